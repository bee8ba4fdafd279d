import GRDB

/// Notices commits to a database by any process, without reading the log: one
/// read-only connection of its own, on which `PRAGMA data_version` changes whenever
/// another connection (of this process or another) has committed.
///
/// - Complexity: `version()` reads SQLite's WAL index header, not the database:
///   microseconds, whatever the log's size, so it can be polled every few milliseconds.
///
/// The connection is `mode=ro`, not `immutable`: it sees other processes' commits. On a
/// database no process has open, SQLite creates the `-wal` and `-shm` files beside it
/// (as the next writer would), since only they let a reader see commits as they come.
final class CommitWatcher: Sendable {
    let path: String
    private let queue: DatabaseQueue

    init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.label = "audit.watch"
        config.prepareDatabase { db in try DatabaseFile.harden(db) }
        do {
            queue = try DatabaseQueue(path: DatabaseFile.uri(path, query: "mode=ro"), configuration: config)
        } catch let error as DatabaseError {
            throw EventStore.openFailure(SQLiteFailure(error, path: path))
        }
    }

    /// A number that differs from the last one read whenever a commit happened between.
    func version() throws -> Int64 {
        try sqlite {
            try queue.inDatabase { db in try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0 }
        }
    }

    /// The seq of the last committed event.
    func head() throws -> Int64 {
        try read { db in try ChainHead.seq(db) }
    }

    /// Runs `body` in a read transaction on the watcher's connection.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try sqlite { try queue.read(body) }
    }

    private func sqlite<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw StoreError.sqlite(SQLiteFailure(error, path: path))
        }
    }
}
