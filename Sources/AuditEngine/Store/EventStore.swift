import Foundation
import GRDB
import Logging

/// The append-only event log in one SQLite database.
///
/// Safe to share between threads; several processes may open the same file at once
/// (appends are serialised by SQLite's write lock, reads never block).
///
/// Durability: WAL mode with `synchronous = FULL`, so an append that returned has been
/// fsynced and survives a power cut, not only a crash of the process.
///
/// ```swift
/// let store = try EventStore(path: "audit.db", create: true)
/// try store.append(NewEvent(stream: "order-1", type: "OrderPlaced"))
/// ```
public final class EventStore: Sendable {
    /// The database file's path.
    public let path: String
    let pool: DatabasePool
    /// Where the engine reports what it worked around, such as a damaged snapshot it
    /// did not use (at `warning` level). Bootstrap swift-log to route it.
    public let logger = Logger(label: "audit")

    /// How long a writer waits for another process's write lock before failing.
    public static let busyTimeout: TimeInterval = 60

    /// Opens the store at `path`, creating it first when `create` is true. Brings an
    /// older schema up to date.
    ///
    /// - Throws: `StoreError.noDatabase` when the file is missing and `create` is false;
    ///   `StoreError.schemaTooNew` when a newer build wrote it.
    /// Whether it was opened read-only: nothing is written to the file, and reads that
    /// need catching up fold the lag into a scratch database (`CatchUp`).
    public let isReadOnly: Bool

    /// Opens the store at `path`, creating it first when `create` is true. Brings an
    /// older schema up to date, unless `readOnly`: then nothing is written, and an older
    /// schema is an error.
    public convenience init(path: String, create: Bool = false, readOnly: Bool) throws {
        try self.init(path: path, create: create && !readOnly, readOnlyOpen: readOnly)
    }

    public convenience init(path: String, create: Bool = false) throws {
        try self.init(path: path, create: create, readOnly: false)
    }

    private init(path: String, create: Bool, readOnlyOpen: Bool) throws {
        if !create, !FileManager.default.fileExists(atPath: path) {
            throw StoreError.noDatabase(path: path)
        }
        isReadOnly = readOnlyOpen
        var config = Configuration()
        config.readonly = readOnlyOpen
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.label = "audit"
        config.prepareDatabase { db in
            guard !readOnlyOpen else { return }
            // 16 KiB pages for a new file (ignored for an existing one): measured about
            // a fifth faster ingest than 4 KiB, with fewer B-tree levels for the indexes.
            // It runs before GRDB switches the file to WAL, so it takes effect.
            try db.execute(sql: "PRAGMA page_size = 16384")
            // FULL: each commit is fsynced, in WAL mode too (NORMAL could lose the last
            // commits on power loss).
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -65536")  // 64 MiB per connection
        }
        self.path = path
        do {
            pool = try DatabasePool(path: path, configuration: config)
            let applied = try pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
            let known = Set(Schema.migrationIdentifiers)
            let unknown = applied.subtracting(known)
            if !unknown.isEmpty {
                throw StoreError.schemaTooNew(path: path, unknownMigrations: unknown.sorted())
            }
            if readOnlyOpen {
                guard applied == known else {
                    throw StoreError.storage("the database at \(path) was made by an older audit; run audit init to upgrade it (it was opened read-only)")
                }
            } else {
                try Schema.migrator.migrate(pool)
            }
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError {
            throw StoreError.storage("cannot open the database \(path)", error, path: path)
        } catch {
            throw StoreError.storage("cannot open the database \(path): \(error)")
        }
    }

    /// Runs `body` in one IMMEDIATE write transaction, rolled back if `body` throws: it takes the write lock first, so
    /// reads in the body see the latest data and no other process can interleave.
    func writeTransaction<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch let error as DatabaseError {
            throw StoreError.storage("database write failed (\(path))", error, path: path)
        }
    }

    /// Runs `body` in a read transaction: one consistent snapshot of the log.
    func readTransaction<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch let error as DatabaseError {
            throw StoreError.storage("database read failed (\(path))", error, path: path)
        }
    }

    /// The position of the last event and the head of the hash chain.
    public func head() throws -> (seq: Int64, hash: [UInt8]) {
        try readTransaction { db in
            let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM chain_head WHERE singleton = 1")!
            return (row["seq"], [UInt8](row["hash"] as Data))
        }
    }
}
