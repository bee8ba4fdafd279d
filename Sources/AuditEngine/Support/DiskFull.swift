import Foundation
import GRDB

/// Says "disk full" when a storage failure is one: SQLite's SQLITE_FULL, or an I/O
/// error (SQLITE_IOERR and its variants: a `-shm` or `-wal` that could not grow, say)
/// while the file system holding the database has no space left, which is how SQLite
/// reports ENOSPC outside its own writes.
package enum DiskFull {
    /// Bytes left below which a file system counts as full (a few SQLite pages).
    static let threshold: UInt64 = 256 << 10

    /// The system's words for `code` (an errno), with "(disk full)" when it is ENOSPC
    /// or EDQUOT, which users read as an I/O error otherwise.
    package static func reason(_ code: Int32) -> String {
        String(cString: strerror(code)) + (code == ENOSPC || code == EDQUOT ? " (disk full)" : "")
    }

    /// Whether `error` is the disk running full under the database at `path`.
    static func isDiskFull(_ error: DatabaseError, path: String) -> Bool {
        if error.resultCode == .SQLITE_FULL { return true }
        return error.resultCode == .SQLITE_IOERR && isFull(directoryOf: path)
    }

    /// Whether the file system holding `path`'s directory (and so its `-wal`, `-shm`
    /// and journal files) has less than `threshold` bytes left for this user.
    static func isFull(directoryOf path: String) -> Bool {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var stats = statvfs()
        guard statvfs(directory, &stats) == 0 else { return false }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize) < threshold
    }
}

extension StoreError {
    /// SQLite's `error` while `context` (e.g. "cannot open the database P"), worded as
    /// the user should read it: a full disk says so first.
    static func storage(_ context: String, _ error: DatabaseError, path: String) -> StoreError {
        guard DiskFull.isDiskFull(error, path: path) else { return .storage("\(context): \(error)") }
        return DiskFull.error(context, failure: SQLiteFailure(error, path: path))
    }
}

extension DiskFull {
    /// The error for `failure`, which is the disk running full under its database.
    static func error(_ context: String, failure: SQLiteFailure) -> StoreError {
        let directory = URL(fileURLWithPath: failure.path).deletingLastPathComponent().path
        return .storage("\(context): disk full: the file system holding \(directory) has no space left; free some and run it again (SQLite: \(failure.message))")
    }
}
