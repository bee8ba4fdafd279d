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
/// Only a store opened with `create: true` makes a new database, and only
/// `EventStore.upgrade(path:)` brings an older one up to date; a writable store on an
/// older schema is refused, a read-only one reads it as it is.
///
/// ```swift
/// let store = try EventStore(path: "audit.db", create: true)
/// try store.append(NewEvent(stream: "order-1", type: "OrderPlaced"))
/// let evidence = try EventStore(path: "copy.db", access: .readOnly)
/// ```
public final class EventStore: Sendable {
    /// How a store may use its file.
    public enum Access: Sendable, Equatable {
        /// Appends, replays and exports write it.
        case readWrite
        /// Nothing is written, not even SQLite's `-wal` and `-shm` files beside it: for
        /// `verify`, `events` and other reads, on a copy the user may not write.
        case readOnly
    }

    /// The database file's path.
    public let path: String
    public let access: Access
    /// Whether it was opened `.readOnly`.
    public var isReadOnly: Bool { access == .readOnly }
    /// A `DatabasePool` for a writable store; a read-only `DatabaseQueue` otherwise.
    let pool: any DatabaseWriter
    /// How a read-only store reads its file.
    let readOnlyMode: DatabaseFile.ReadOnlyMode?
    /// What another connection attaches to read this store as this one does: the path,
    /// or for a read-only store a `file:` URI that keeps it read-only.
    let attachLocation: String
    /// The main file as it was when an immutable read-only store opened it.
    private let openedStamp: DatabaseFile.Stamp?
    /// The migrations the database has, oldest first (all of this build's when the
    /// store is writable).
    let appliedMigrations: [String]
    /// Where the engine reports what it worked around, such as a damaged snapshot it
    /// did not use (at `warning` level). Bootstrap swift-log to route it.
    public let logger = Logger(label: "audit")

    /// How long a writer waits for another process's write lock before failing.
    public static let busyTimeout: TimeInterval = 60

    /// Opens the store at `path`.
    ///
    /// - Parameters:
    ///   - create: make a new database when nothing (or an empty file) is at `path`.
    ///     Ignored for a read-only store.
    ///   - access: `.readOnly` writes nothing and reads an older schema as it is.
    /// - Throws: `StoreError.noDatabase` when the file is missing and `create` is false;
    ///   `.notAuditDatabase` for a file without the audit schema; `.schemaTooNew` when a
    ///   newer build wrote it; `.schemaTooOld` (writable only) when an older one did;
    ///   `.readOnlyDatabase` when a writable store cannot write it;
    ///   `.schemaAltered` (exit 4) when its schema is not the one the engine's migrations
    ///   make, which only `EventStore.verify(path:)` reads.
    public convenience init(path: String, create: Bool = false, access: Access = .readWrite) throws {
        try self.init(path: path, create: create, access: access, checkingSchema: true)
    }

    /// As `init(path:create:access:)`; `checkingSchema: false` opens a read-only store
    /// on an altered schema too, for a check that reports it itself (`verify`,
    /// `verify-export --db`).
    package init(path: String, create: Bool = false, access: Access, checkingSchema: Bool) throws {
        self.path = path
        self.access = access
        let opened = access == .readOnly
            ? try Self.openReadOnly(path, checkingSchema: checkingSchema) : try Self.openWritable(path, create: create)
        pool = opened.database
        readOnlyMode = opened.mode
        attachLocation = opened.attachLocation
        openedStamp = opened.mode == .immutable ? opened.stamp : nil
        appliedMigrations = opened.migrations
    }

    /// Runs `body` in one IMMEDIATE write transaction, rolled back if `body` throws: it takes the write lock first, so
    /// reads in the body see the latest data and no other process can interleave.
    func writeTransaction<T>(_ body: (Database) throws -> T) throws -> T {
        guard access == .readWrite else {
            throw StoreError.readOnlyDatabase(path: path, reason: "it was opened read-only")
        }
        do {
            return try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                guard let result else { throw StoreError.storage("the write transaction on \(path) returned nothing") }
                return result
            }
        } catch let error as DatabaseError {
            throw storeError(error)
        }
    }

    /// Runs `body` in a read transaction: one consistent snapshot of the log.
    ///
    /// - Throws: `StoreError.changedWhileRead` when an immutable read saw the file change.
    func readTransaction<T>(_ body: (Database) throws -> T) throws -> T {
        let result: Result<T, any Error>
        do {
            result = .success(try pool.read(body))
        } catch let error as DatabaseError {
            result = .failure(storeError(error))
        } catch {
            result = .failure(error)
        }
        if let openedStamp, DatabaseFile.stamp(path) != openedStamp {
            throw StoreError.changedWhileRead(path: path)
        }
        return try result.get()
    }

    /// A GRDB failure as the store reports it.
    func storeError(_ error: DatabaseError) -> StoreError {
        if DiskFull.isDiskFull(error, path: path) { return .storage("the database \(path)", error, path: path) }
        let failure = SQLiteFailure(error, path: path)
        if failure.isReadOnly { return .readOnlyDatabase(path: path, reason: "SQLite: \(failure.message)") }
        return .sqlite(failure)
    }

    /// The position of the last event and the head of the hash chain.
    ///
    /// - Throws: `StoreError.integrity` when the head record is missing or damaged.
    public func head() throws -> (seq: Int64, hash: [UInt8]) {
        try readTransaction { db in
            let head = try ChainHead.read(db)
            return (head.seq, head.hash)
        }
    }
}
