import Foundation
import GRDB

/// A private database that holds projections' states as they were at a point in
/// time, with the store attached (read-only use) as schema `store`. Nothing in it
/// touches the store's own tables.
///
/// It is SQLite's own temporary database (opened with an empty path): pages past its
/// cache go to a file in the temporary directory that SQLite unlinks as soon as it
/// opens it, so nothing is left behind however the process ends, killed included.
/// No database beyond `store` can be attached to it.
///
/// The connection holds one transaction from start to end, so every read of the store
/// through it (the snapshots chosen, their chunks, the states restored or looked up
/// during the fold) sees the store as it was at the first read: a replay that thins or
/// drops snapshots meanwhile cannot pull a chosen snapshot's deltas from under the
/// question. `writeStates` is a savepoint in it; nothing is ever committed (the
/// file is scratch).
final class TemporaryStates: StateDatabase {
    let queue: DatabaseQueue

    init(storePath: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.allowsUnsafeTransactions = true  // the one transaction spans every access (see above)
        config.prepareDatabase { db in
            // A scratch file: durability is worth nothing here.
            try db.execute(sql: "PRAGMA journal_mode = OFF")
            try db.execute(sql: "PRAGMA synchronous = OFF")
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA trusted_schema = OFF")  // the attached store is a file a user handed in
            try DatabaseFile.registerFunctions(db)
        }
        queue = try DatabaseQueue(path: "", configuration: config)
        try queue.inDatabase { db in
            try db.execute(sql: "ATTACH DATABASE ? AS store", arguments: [storePath])
            try db.execute(sql: "PRAGMA store.mmap_size = 4294967296")
            // `store` is the one attachment: a user's query cannot attach (create) files.
            db.attachmentLimit = 1
            try db.beginTransaction(.deferred)
            // A deferred transaction takes its read snapshot of a database at the first
            // read of it: now, before anything is chosen.
            _ = try Int64.fetchOne(db, sql: "SELECT count(*) FROM store.sqlite_master")
        }
    }

    func readStates<T>(_ body: (Database) throws -> T) throws -> T {
        try queue.inDatabase(body)
    }

    var concurrentReads: Bool { false }  // one connection

    /// Runs a user's query over these states, in front of the store, with nothing
    /// writable (`query_only`).
    func runQuery(
        sql: String, parameters: [String: String], source: String, header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        try readStates { db in
            try db.execute(sql: "PRAGMA query_only = 1")
            defer { try? db.execute(sql: "PRAGMA query_only = 0") }
            try EventStore.runQuery(db, sql: sql, parameters: parameters, source: source, header: header, row: row)
        }
    }

    func writeStates(_ body: (Database) throws -> Void) throws {
        try queue.inDatabase { db in
            try db.inSavepoint {
                try body(db)
                return .commit
            }
        }
    }
}
