import Foundation

/// An exclusive lock on one kind of work on one database, across processes.
///
/// An advisory `flock` on `<database>-<name>.lock`: the kernel releases it when the
/// holder exits or is killed, so a crashed holder never leaves the work locked. The
/// file holds the holder's pid and start time, for the message another process sees.
/// The lock is released when the object is deinitialised.
final class DatabaseLock: Sendable {
    private let fd: Int32
    /// The lock file's path.
    let path: String

    /// Takes the lock, or returns nil at once when another process (or another
    /// `DatabaseLock` in this process) holds it; `holder` then says who.
    static func attempt(databasePath: String, name: String) throws -> (lock: DatabaseLock?, holder: String) {
        let path = databasePath + "-" + name + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError.storage("cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            return (nil, holder)
        }
        let note = "pid \(getpid()) since \(Timestamp.now())\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
        return (DatabaseLock(fd: fd, path: path), "")
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
