import Foundation

/// One replay at a time per database, across processes.
///
/// An advisory `flock` on `<database>-replay.lock`: the kernel releases it when the
/// holder exits or is killed, so a crashed replay never leaves the database locked.
/// Two replays at once would write the same tables and positions interleaved.
final class ReplayLock {
    private let fd: Int32

    /// Takes the lock, or throws at once naming who holds it.
    init(databasePath: String) throws {
        let path = databasePath + "-replay.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError.storage("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw StoreError.storage(
                "another replay is running on \(databasePath)\(holder.isEmpty ? "" : " (\(holder))"); wait for it to finish, then run this one again")
        }
        let note = "pid \(getpid()) since \(Timestamp.now())\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
