import CSQLiteSupport
import Foundation
import GRDB
import GRDBSQLite

/// How the engine opens a database file a user handed it: what is beside it, how to
/// read it without writing anything (not even SQLite's `-wal` and `-shm` files), and
/// whether it can be written.
enum DatabaseFile {
    /// How a read-only connection reads the file.
    enum ReadOnlyMode: Sendable, Equatable {
        /// The `-wal` and `-shm` files exist (another connection has the database open,
        /// or left them): an ordinary read-only connection, which takes part in
        /// SQLite's locking and so sees one consistent snapshot while others write,
        /// and creates nothing.
        case shared
        /// There is no `-wal` with commits in it: the file alone is the database, read
        /// with `immutable=1`, which takes no locks and creates no file. A writer that
        /// opens the database meanwhile may change the file under the reader, so
        /// `changed` is checked after each read.
        case immutable
    }

    /// What identifies one version of the main file's content.
    struct Stamp: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
    }

    static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if os(Linux)
        let modified = info.st_mtim
        #else
        let modified = info.st_mtimespec
        #endif
        return Stamp(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            seconds: Int(modified.tv_sec), nanoseconds: Int(modified.tv_nsec))
    }

    /// The size of the file at `path`, nil when there is none.
    static func size(_ path: String) -> Int64? { stamp(path)?.size }

    /// The location to open `path` read-only at (a `file:` URI for an immutable read)
    /// and the mode.
    ///
    /// - Parameter mayCreateSharedMemory: a writer probing the file first may let
    ///   SQLite create the `-shm` of a `-wal` that has commits (it is about to create
    ///   it anyway); a reader never does.
    /// - Throws: `StoreError.noDatabase` when nothing is at `path`;
    ///   `.uncheckpointedCopy` when a `-wal` holds commits but reading them would
    ///   create the `-shm`.
    static func readOnlyLocation(_ path: String, mayCreateSharedMemory: Bool = false) throws -> (location: String, mode: ReadOnlyMode) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw StoreError.noDatabase(path: path) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw StoreError.notAuditDatabase(path: path, reason: "it is a directory")
        }
        let walSize = size(path + "-wal")
        let hasSharedMemory = size(path + "-shm") != nil
        if walSize != nil, hasSharedMemory || mayCreateSharedMemory {
            return (path, .shared)
        }
        if let walSize, walSize > 0 {
            throw StoreError.uncheckpointedCopy(path: path)
        }
        return (uri(path, query: "immutable=1"), .immutable)
    }

    /// The `file:` URI of `path` with `query` (`mode=ro`, `immutable=1`).
    static func uri(_ path: String, query: String) -> String {
        "file:" + uriEscaped(path) + "?" + query
    }

    /// `path` with the characters that end or escape a URI's path percent-encoded.
    private static func uriEscaped(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "%"), UInt8(ascii: "?"), UInt8(ascii: "#"), 0..<0x21, 0x7F...:
                out += String(format: "%%%02X", byte)
            default:
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// Fails with `StoreError.readOnlyDatabase` when this process cannot write the
    /// database at `path`: the file itself, or the folder SQLite must create the
    /// `-wal` and `-shm` files in.
    static func checkWritable(_ path: String, exists: Bool) throws {
        func denied(_ file: String) -> String? {
            guard access(file, W_OK) != 0 else { return nil }
            switch errno {
            case EROFS: return "its file system is mounted read-only"
            case EPERM: return "\(file) is marked immutable (chattr +i)"
            case EACCES: return "this user may not write \(file)"
            default: return "\(file): \(String(cString: strerror(errno)))"
            }
        }
        if exists, let reason = denied(path) { throw StoreError.readOnlyDatabase(path: path, reason: reason) }
        for companion in [path + "-wal", path + "-shm"] where size(companion) != nil {
            if let reason = denied(companion) { throw StoreError.readOnlyDatabase(path: path, reason: reason) }
        }
        if !exists || size(path + "-wal") == nil || size(path + "-shm") == nil {
            let folder = (path as NSString).deletingLastPathComponent
            if let reason = denied(folder.isEmpty ? "." : folder) {
                throw StoreError.readOnlyDatabase(path: path, reason: "SQLite must create its -wal and -shm files beside it, and \(reason)")
            }
        }
    }

    /// Puts the engine's json_extract(json, path) in place of SQLite's on `db`: the same
    /// answers, to the bit, without parsing the whole document for a member of a state
    /// or payload as the engine writes them (json_extract.c; a third of a question's
    /// series over the reference workload, measured). JSONExtractTests compares the two.
    static func registerFunctions(_ db: Database) throws {
        let rc = audit_sqlite_register_json_extract(UnsafeMutableRawPointer(db.sqliteConnection), "json_extract")
        guard rc == SQLITE_OK else {
            throw StoreError.sqlite(SQLiteFailure(code: rc, message: "cannot register json_extract", sql: nil, path: db.displayPath))
        }
    }

    /// Settings for a connection to a file a user handed in: its schema is not trusted
    /// to run functions with side effects, and SQL cannot corrupt the file on purpose
    /// through this connection (SQLite's defensive mode).
    static func harden(_ db: Database) throws {
        try db.execute(sql: "PRAGMA trusted_schema = OFF")
        var enabled: Int32 = 0
        let rc = audit_sqlite_defensive(UnsafeMutableRawPointer(db.sqliteConnection), &enabled)
        guard rc == SQLITE_OK, enabled == 1 else {
            throw StoreError.sqlite(SQLiteFailure(
                code: rc, message: "cannot turn on SQLite's defensive mode", sql: nil, path: db.displayPath))
        }
    }
}
