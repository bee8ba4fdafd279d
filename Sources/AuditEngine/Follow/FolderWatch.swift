import Foundation

/// Notices that the `*.lua` files of a projections folder (and of its `lib/`) changed,
/// appeared or went, by their metadata alone: a follower asks it between passes, and
/// reads and hashes a projection's code only when one of its files' stamps moved.
///
/// - Complexity: `changedPaths()` lists the two folders and `stat`s each `*.lua` in
///   them; it reads no file. A follower calls it at most every
///   `FollowOptions.codeCheckInterval`, not per commit.
final class FolderWatch {
    let folder: String
    /// Per path relative to `folder` (`NAME.lua`, `lib/M.lua`), its stamp as last seen;
    /// empty at first, so that the first call reports every file.
    private var stamps: [String: Stamp] = [:]

    /// What says that a file's content may have changed: a rewrite changes its mtime
    /// (nanoseconds), a rename over it its inode, an append its size.
    struct Stamp: Equatable {
        var size: Int64
        var seconds: Int
        var nanoseconds: Int
        var inode: UInt64
    }

    init(folder: String) {
        self.folder = folder
    }

    /// The paths whose stamp differs from the last call's (new, changed or removed).
    func changedPaths() -> Set<String> {
        let now = Self.stamps(folder)
        guard now != stamps else { return [] }
        var changed: Set<String> = []
        for (path, stamp) in now where stamps[path] != stamp { changed.insert(path) }
        for path in stamps.keys where now[path] == nil { changed.insert(path) }
        stamps = now
        return changed
    }

    /// The stamps of the `*.lua` files of `folder` and `folder/lib`.
    static func stamps(_ folder: String) -> [String: Stamp] {
        var result: [String: Stamp] = [:]
        for sub in ["", "lib/"] {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder + "/" + sub) else { continue }
            for entry in entries where entry.hasSuffix(".lua") {
                var info = stat()
                guard stat(folder + "/" + sub + entry, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                result[sub + entry] = Stamp(
                    size: Int64(info.st_size), seconds: info.st_mtim.tv_sec, nanoseconds: info.st_mtim.tv_nsec,
                    inode: UInt64(info.st_ino))
            }
        }
        return result
    }
}
