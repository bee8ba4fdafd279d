import Foundation
import GRDB

extension EventStore {
    /// Calls `body(key, stateJSON)` for a projection's states as they were at `time`,
    /// in key order (bytewise), or only for `key`.
    ///
    /// The states are folded from the newest snapshot of the projection's code that
    /// holds only selected events (or from seq 1) into a temporary database; the live
    /// tables are not touched. The result equals a from-scratch replay of exactly the
    /// selected events (CONTRACT §4).
    /// - Complexity: one pass over the selected events after the snapshot; for a key of
    ///   a projection keyed by stream, only that stream's events.
    /// - Throws: `ProjectionError` when a handler fails on a selected event.
    public func forEachState(
        _ projection: Projection, at time: TemporalSelection, key: String? = nil, options: TemporalOptions = TemporalOptions(),
        _ body: (String, String) throws -> Void
    ) throws {
        try forEachStateBytes(projection, at: time, key: key, options: options) { key, state in
            try body(String(decoding: key, as: UTF8.self), String(decoding: state, as: UTF8.self))
        }
    }

    /// As `forEachState(_:at:key:options:_:)`, with each key and state as UTF-8 bytes
    /// (the state canonical JSON) that are valid only during the call: no String is
    /// made per state, for a caller that copies the bytes out (`audit state` does).
    public func forEachStateBytes(
        _ projection: Projection, at time: TemporalSelection, key: String? = nil, options: TemporalOptions = TemporalOptions(),
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try forEachStateBytes(projection, at: [time], key: key, options: options) { _, key, state in try body(key, state) }
    }

    /// As `forEachStateBytes(_:at:key:options:_:)`, telling `parked`, before the first
    /// state, the keys parked in the answer (key -> first seq not folded): their states
    /// are their last good ones, and a key parked at its first selected event has none.
    package func forEachStateBytes(
        _ projection: Projection, at time: TemporalSelection, key: String? = nil, options: TemporalOptions,
        parked: ([String: Int64]) throws -> Void, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try forEachStateBytes(projection, at: [time], key: key, options: options, parked: { _, keys in try parked(keys) }) { _, key, state in
            try body(key, state)
        }
    }

    /// As `forEachStateBytes(_:at:key:options:_:)` at each of `points` (see
    /// `PointFold` for the order they must follow), in one pass: `body(point, key,
    /// state)`, the point being an index into `points`, ascending.
    func forEachStateBytes(
        _ projection: Projection, at points: [TemporalSelection], key: String? = nil, options: TemporalOptions,
        parked: (Int, [String: Int64]) throws -> Void = { _, _ in },
        _ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard !points.isEmpty else { return }
        let states = try TemporaryStates(storePath: attachLocation)
        let ends = try states.readStates { db in try SelectedRange.ends(points, db) }
        let fold = try PointFold(
            store: self, states: states, projections: [projection], first: points[0], end: ends[0], more: points.count > 1,
            key: key, options: options)
        for (index, point) in points.enumerated() {
            try fold.advance(to: point, end: ends[index])
            try parked(index, fold.members[0].parked)
            try states.readStates { db in
                let scan = try OverlayScan(db, fold.members[0].overlay, key: key)
                while let key = scan.key {
                    try body(index, key, scan.state)
                    try scan.advance()
                }
            }
        }
    }

    /// Runs one read-only SQL statement over the projections' tables and the events as
    /// they were at `time` (see `query(sql:…)` for parameters).
    ///
    /// Only the projections the statement reads are folded (found by compiling it),
    /// each as in `forEachState(_:at:)`, and read as overlays (`StateOverlay`): the
    /// snapshot's states are not copied. `events` holds only the selected events.
    /// - Parameter projections: the workspace's projections; a table the SQL reads that
    ///   is not among them is an error.
    public func query(
        sql: String, parameters: [String: String] = [:], source: String = "--sql", at time: TemporalSelection,
        projections: [Projection], options: TemporalOptions = TemporalOptions(),
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        try query(
            sql: sql, parameters: parameters, source: source, at: [time], projections: projections, options: options,
            header: header, row: { _, values in try row(values) })
    }

    /// As `query(sql:…at:…)` at each of `points` (see `PointFold` for the order they
    /// must follow), in one pass: `header` once (before anything is folded), then
    /// `row(point, values)`, the point being an index into `points`, ascending;
    /// `reading` is told the projections the statement reads, after `header`.
    func query(
        sql: String, parameters: [String: String], source: String, at points: [TemporalSelection], projections: [Projection],
        options: TemporalOptions, header: ([String]) throws -> Void, reading: ([Projection]) throws -> Void = { _ in },
        row: (Int, [SQLValue]) throws -> Void
    ) throws {
        let states = try TemporaryStates(storePath: attachLocation)
        do {
            let ends = try states.readStates { db in try SelectedRange.ends(points, db) }
            // Empty tables for every projection and the events view, so that the statement
            // compiles; then the tables it reads are the ones to fold.
            var read: [Projection] = []
            try states.writeStates { db in
                for projection in projections {
                    try db.execute(sql: ReadModelTarget(projection: projection.name, kind: .temporary, columns: projection.columns).createSQL)
                }
                try db.execute(sql: Self.eventsView(points.first ?? TemporalSelection(), end: ends.first ?? 0))
            }
            try states.readStates { db in
                let statement = try UserSQL.prepare(db, sql: sql, source: source)
                try Self.bind(statement, parameters, source: source)
                read = projections.filter { statement.databaseRegion.isModified(byEventsOfKind: .insert(tableName: $0.name)) }
                try header(statement.columnNames)
            }
            try reading(read)
            guard let first = points.first else { return }
            let fold = try PointFold(
                store: self, states: states, projections: read, first: first, end: ends[0], more: points.count > 1, options: options)
            let tables = try states.readStates { db in try OverlayTables(db) }
            for (index, point) in points.enumerated() {
                try fold.advance(to: point, end: ends[index])
                try states.writeStates { db in
                    for member in fold.members { try tables.install(member.overlay, db) }
                    if index > 0 {
                        try db.execute(sql: "DROP VIEW temp.events")
                        try db.execute(sql: Self.eventsView(point, end: ends[index]))
                    }
                }
                try states.readStates { db in
                    try db.execute(sql: "PRAGMA query_only = 1")
                    defer { try? db.execute(sql: "PRAGMA query_only = 0") }
                    try tables.reading(db) {
                        try EventStore.runQuery(
                            db, sql: sql, parameters: parameters, source: source, header: { _ in }, row: { try row(index, $0) })
                    }
                }
            }
        } catch let error as DatabaseError {
            throw QueryError(source: source, message: error.message ?? "\(error)")
        }
    }

    /// A temporary view that shadows the store's `events` with the selected ones.
    static func eventsView(_ time: TemporalSelection, end: Int64) -> String {
        var condition = "seq <= \(end)"
        if let asOf = time.asOf { condition += " AND occurred_at <= '\(asOf.description)'" }
        return "CREATE TEMP VIEW events AS SELECT * FROM store.events WHERE \(condition)"
    }
}
