import Foundation
import GRDB

/// What a current read answered from: the head, and the seq each projection it read
/// was at (equal to the head unless it could not be caught up, which was said).
public struct ReadPositions: Sendable, Equatable {
    public var head: Int64
    /// Projection name → position, for the projections the read used.
    public var positions: [String: Int64]
}

extension EventStore {
    /// Runs one read-only SQL statement as `query(sql:…)` does, after bringing the
    /// projections it reads up to date (DECISIONS 14; see `CatchUpOptions`).
    ///
    /// The projections read are found by compiling the statement. A table it names
    /// that is a projection never built is said to be so, not "no such table".
    /// - Returns: the positions answered from.
    @discardableResult
    public func query(
        sql: String, parameters: [String: String] = [:], source: String = "--sql", current options: CatchUpOptions,
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws -> ReadPositions {
        let names = try projectionsRead(sql: sql, source: source, folder: options.folder)
        let states = try currentStates(names, options: options)
        let positions = ReadPositions(head: states.head, positions: states.positions)
        guard let scratch = states.scratch else {
            try (states.store ?? self).query(sql: sql, parameters: parameters, source: source, header: header, row: row)
            return positions
        }
        do {
            try scratch.runQuery(sql: sql, parameters: parameters, source: source, header: header, row: row)
        } catch let error as DatabaseError {
            throw QueryError(source: source, message: error.message ?? "\(error)")
        }
        return positions
    }

    /// Calls `body(key, stateJSON)` as `forEachState(projection:key:_:)` does, after
    /// bringing the projection up to date (see `CatchUpOptions`).
    ///
    /// - Returns: the positions answered from.
    @discardableResult
    public func forEachState(
        projection: String, key: String? = nil, current options: CatchUpOptions, _ body: (String, String) throws -> Void
    ) throws -> ReadPositions {
        let states = try currentStates([projection], options: options)
        let positions = ReadPositions(head: states.head, positions: states.positions)
        guard let scratch = states.scratch else {
            try (states.store ?? self).forEachState(projection: projection, key: key, body)
            return positions
        }
        // The scratch table when it was folded there, else the store's.
        try scratch.readStates { db in
            let schema = try db.tableExists(projection) ? "main" : "store"
            let table = schema + "." + ReadModel.quote(projection)
            let rows = key.map { try? Row.fetchCursor(db, sql: "SELECT key, state FROM \(table) WHERE key = ?", arguments: [$0]) }
                ?? (try? Row.fetchCursor(db, sql: "SELECT key, state FROM \(table) ORDER BY key"))
            guard let rows else { return }
            while let row = try rows.next() {
                let (key, state) = try StoredState.checked(row, projection: projection)
                try body(key, state)
            }
        }
        return positions
    }

    /// Brings `names` up to date for a read that folds them itself (`explain`).
    ///
    /// - Returns: the positions, and the store to read from afterwards: this one, or
    ///   the writable store the lag was folded with (`CatchUpOptions.mayOpenForWriting`).
    public func catchUp(_ names: [String], options: CatchUpOptions) throws -> (positions: ReadPositions, store: EventStore) {
        let states = try currentStates(names, options: options)
        return (ReadPositions(head: states.head, positions: states.positions), states.store ?? self)
    }

    /// The live projections `sql` reads, found by compiling it on the store.
    ///
    /// - Throws: `ProjectionError` when it names a projection never built (registered,
    ///   or in `folder`); `QueryError` when it does not compile otherwise.
    func projectionsRead(sql: String, source: String, folder: String?) throws -> [String] {
        try readTransaction { db in
            let live = try ReadModel.records(db, build: false).keys.sorted()
            let region: DatabaseRegion
            do {
                region = try UserSQL.prepare(db, sql: sql, source: source).databaseRegion
            } catch let error as QueryError where error.message.hasPrefix("no such table: ") {
                // SQLite's name, before any hint added after it ("… (the tables are: …)").
                var table = String(error.message.dropFirst("no such table: ".count).prefix { $0 != " " })
                if table.hasPrefix("main.") { table.removeFirst(5) }
                let registry = try ProjectionRegistry.read(db)
                let inFolder = folder.map { FileManager.default.fileExists(atPath: $0 + "/" + table + ".lua") } ?? false
                if inFolder || registry.names.contains(where: { ProjectionNames.folded($0) == ProjectionNames.folded(table) }) {
                    let build = try ReadModel.record(db, name: table, build: true)
                    throw ProjectionError(projection: table, message: "\(source): " + neverBuiltMessage(table, registry: registry, build: build))
                }
                throw error
            }
            return live.filter { region.isModified(byEventsOfKind: .insert(tableName: $0)) }
        }
    }
}
