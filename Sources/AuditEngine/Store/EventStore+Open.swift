import Foundation
import GRDB
import GRDBSQLite

/// Opening a store: what the file holds is found out read-only first, so that a
/// command never writes into a file that is not an audit database, nor upgrades one
/// (only `init` does, through `EventStore.upgrade`).
extension EventStore {
    struct Opened {
        var database: any DatabaseWriter
        var mode: DatabaseFile.ReadOnlyMode?
        var stamp: DatabaseFile.Stamp?
        var migrations: [String]
        var attachLocation: String
    }

    /// A read-only connection that creates no file (see `DatabaseFile.ReadOnlyMode`).
    ///
    /// - Parameters:
    ///   - probing: a writer looking before it opens, which may let SQLite create a
    ///     missing `-shm`.
    ///   - checkingSchema: refuse a schema that is not the one the migrations the
    ///     database records make (`StoreError.schemaAltered`); only the checks that
    ///     report it themselves (`verify`, `verify-export`) open without.
    static func openReadOnly(_ path: String, probing: Bool = false, checkingSchema: Bool = true) throws -> Opened {
        let (location, mode) = try DatabaseFile.readOnlyLocation(path, mayCreateSharedMemory: probing)
        do {
            return try openReadOnly(path, location: location, mode: mode, checkingSchema: checkingSchema)
        } catch let error as StoreError where mode == .shared && !probing && DatabaseFile.size(path + "-wal") == 0 {
            // The `-shm` beside an empty `-wal` could not be read (a writer that could
            // not grow it on a full disk leaves both behind). With no commits in the
            // `-wal`, the main file alone is the whole database.
            guard case .notAuditDatabase = error else {
                return try openReadOnly(path, location: DatabaseFile.uri(path, query: "immutable=1"), mode: .immutable, checkingSchema: checkingSchema)
            }
            throw error
        }
    }

    private static func openReadOnly(_ path: String, location: String, mode: DatabaseFile.ReadOnlyMode, checkingSchema: Bool) throws -> Opened {
        let stamp = DatabaseFile.stamp(path)
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.label = "audit"
        config.prepareDatabase { db in
            try DatabaseFile.harden(db)
            try DatabaseFile.registerFunctions(db)
            try db.execute(sql: "PRAGMA cache_size = -65536")  // 64 MiB
        }
        do {
            let queue = try DatabaseQueue(path: location, configuration: config)
            let migrations = try queue.read { db in
                let migrations = try auditMigrations(db, path: path, fileSize: stamp?.size ?? 0)
                // A table no longer STRICT lets a value change storage class under its
                // hash, and `type = ?` then passes over the event: refused before any
                // read (the schema is small; see docs/events.md "Schema versions").
                if checkingSchema {
                    let problems = try SchemaCheck.problems(db, applied: migrations)
                    if !problems.isEmpty { throw StoreError.schemaAltered(path: path, problems: problems) }
                }
                return migrations
            }
            let attach = mode == .immutable ? location : DatabaseFile.uri(path, query: "mode=ro")
            return Opened(database: queue, mode: mode, stamp: stamp, migrations: migrations, attachLocation: attach)
        } catch let error as DatabaseError {
            throw openFailure(SQLiteFailure(error, path: path))
        } catch StoreError.sqlite(let failure) where !failure.isMachineFailure {
            throw openFailure(failure)
        }
    }

    /// A pool of connections that may write, on a database of this build's schema (or a
    /// new one, when `create`).
    static func openWritable(_ path: String, create: Bool) throws -> Opened {
        let size = DatabaseFile.size(path)
        if size == nil, !create { throw StoreError.noDatabase(path: path) }
        if size == 0, !create {
            throw StoreError.notAuditDatabase(path: path, reason: "the file is empty (only `audit init` makes a database)")
        }
        let isNew = (size ?? 0) == 0
        if !isNew {
            let found = try openReadOnly(path, probing: true).migrations
            guard found == Schema.migrationIdentifiers else { throw StoreError.schemaTooOld(path: path) }
        }
        let pool = try openPool(path)
        if isNew {
            do {
                try Schema.migrator.migrate(pool)
            } catch let error as DatabaseError {
                throw openFailure(SQLiteFailure(error, path: path))
            }
        }
        return Opened(database: pool, mode: nil, stamp: nil, migrations: Schema.migrationIdentifiers, attachLocation: path)
    }

    /// A writable pool on `path`, checked to be writable first.
    static func openPool(_ path: String) throws -> DatabasePool {
        try DatabaseFile.checkWritable(path, exists: DatabaseFile.size(path) != nil)
        var config = Configuration()
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.label = "audit"
        config.prepareDatabase { db in
            try DatabaseFile.harden(db)
            try DatabaseFile.registerFunctions(db)
            // 16 KiB pages for a new file (ignored for an existing one): measured about
            // a fifth faster ingest than 4 KiB, with fewer B-tree levels for the indexes.
            // It runs before GRDB switches the file to WAL, so it takes effect.
            try db.execute(sql: "PRAGMA page_size = 16384")
            try db.execute(sql: "PRAGMA cache_size = -65536")  // 64 MiB per connection
        }
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            // FULL: each commit is fsynced, in WAL mode too (NORMAL could lose the last
            // commits on power loss). Set after the pool opened: GRDB's switch to WAL
            // sets the writer's NORMAL.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            return pool
        } catch let error as DatabaseError {
            throw openFailure(SQLiteFailure(error, path: path))
        }
    }

    /// The audit migrations the database has, in this build's order.
    ///
    /// - Throws: `.notAuditDatabase` without the audit schema; `.schemaTooNew` when it
    ///   has migrations this build does not know.
    static func auditMigrations(_ db: Database, path: String, fileSize: Int64) throws -> [String] {
        if fileSize == 0 {
            throw StoreError.notAuditDatabase(path: path, reason: "the file is empty (only `audit init` makes a database)")
        }
        // `events` of any kind: a view in its place is the schema altered, for verify to say.
        let statement = try SQLStatement(
            db, "SELECT name FROM sqlite_master WHERE (type = 'table' AND name = 'grdb_migrations') OR name = 'events'", path: path)
        var found: Set<String> = []
        while try statement.step() { found.insert(statement.string(0)) }
        guard found.count == 2 else {
            throw StoreError.notAuditDatabase(path: path, reason: "it is an SQLite database without the audit schema")
        }
        let applied = try Schema.appliedMigrations(db, path: path)
        let known = Schema.migrationIdentifiers
        let unknown = applied.subtracting(known)
        if !unknown.isEmpty {
            // A later build's migrations are named as these are, with a higher number.
            guard unknown.allSatisfy(Schema.isLaterMigration) else {
                let shown = unknown.sorted().prefix(3).map { "\"\($0.prefix(40))\"" }.joined(separator: ", ")
                throw StoreError.notAuditDatabase(
                    path: path, reason: "its record of migrations is damaged: grdb_migrations holds \(shown), which no audit build writes")
            }
            throw StoreError.schemaTooNew(path: path, unknownMigrations: unknown.sorted())
        }
        return known.filter(applied.contains)
    }

    /// What an SQLite failure to open a file means for the user.
    static func openFailure(_ failure: SQLiteFailure) -> StoreError {
        if failure.isDamage {
            return .notAuditDatabase(path: failure.path, reason: "it is not an SQLite database, or it is damaged (\(failure.message))")
        }
        if failure.isReadOnly { return .readOnlyDatabase(path: failure.path, reason: "SQLite: \(failure.message)") }
        if failure.primaryCode == SQLITE_FULL || (failure.primaryCode == SQLITE_IOERR && DiskFull.isFull(directoryOf: failure.path)) {
            return DiskFull.error("cannot open the database \(failure.path)", failure: failure)
        }
        if failure.primaryCode == SQLITE_ERROR {
            return .notAuditDatabase(path: failure.path, reason: "its schema is not the audit schema (\(failure.message))")
        }
        return .sqlite(failure)
    }
}
