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
        let states = try TemporaryStates(storePath: path)
        // The snapshot is not copied: the table gets only the keys the fold changes,
        // and the output merges it with the snapshot's states, both in key order.
        let base = try materialise([projection], at: time, key: key, into: states, copyBase: false, options: options).first!
        let table = ReadModel.quote(projection.name)
        try states.readStates { db in
            let folded = try db.makeStatement(
                sql: "SELECT key, state FROM main.\(table)\(key == nil ? "" : " WHERE key = ?") ORDER BY key")
            try folded.setArguments(key.map { [$0] } ?? [])
            // Folded keys win over the snapshot's: the last cursor holding a key gives its state.
            var cursors = try base.map { try SnapshotStates.deltas(db, $0, schema: "store", key: key) } ?? []
            cursors.append(try StatementCursor(folded, reading: "the folded states of \(projection.name)"))
            try SortedStates.merge(cursors, body)
        }
    }

    /// Runs one read-only SQL statement over the projections' tables and the events as
    /// they were at `time` (see `query(sql:…)` for parameters).
    ///
    /// Only the projections the statement reads are materialised (found by compiling it),
    /// each as in `forEachState(_:at:)`; `events` holds only the selected events.
    /// - Parameter projections: the workspace's projections; a table the SQL reads that
    ///   is not among them is an error.
    public func query(
        sql: String, parameters: [String: String] = [:], source: String = "--sql", at time: TemporalSelection,
        projections: [Projection], options: TemporalOptions = TemporalOptions(),
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        let states = try TemporaryStates(storePath: path)
        let end = try temporalEnd(time)
        // Empty tables for every projection and the events view, so that the statement
        // compiles; then the tables it reads are the ones to fold.
        var read: [Projection] = []
        do {
            try states.writeStates { db in
                for projection in projections {
                    try db.execute(sql: ReadModelTarget(projection: projection.name, kind: .temporary, columns: projection.columns).createSQL)
                }
                try db.execute(sql: eventsView(time, end: end))
            }
            try states.readStates { db in
                let region = try UserSQL.prepare(db, sql: sql, source: source).databaseRegion
                read = projections.filter { region.isModified(byEventsOfKind: .insert(tableName: $0.name)) }
            }
            try materialise(read, at: time, into: states, end: end, created: true, copyBase: true, options: options)
            try states.runQuery(sql: sql, parameters: parameters, source: source, header: header, row: row)
        } catch let error as DatabaseError {
            throw QueryError(source: source, message: error.message ?? "\(error)")
        }
    }

    /// The last seq a question at `time` can see: the head, or the last event recorded
    /// by `knownAt`.
    private func temporalEnd(_ time: TemporalSelection) throws -> Int64 {
        try readTransaction { db in
            let head = try Int64.fetchOne(db, sql: "SELECT seq FROM chain_head") ?? 0
            guard let knownAt = time.knownAt else { return head }
            return min(head, try EventFilter.lastSeq(knownAt: knownAt, db))
        }
    }

    /// A temporary view that shadows the store's `events` with the selected ones.
    private func eventsView(_ time: TemporalSelection, end: Int64) -> String {
        var condition = "seq <= \(end)"
        if let asOf = time.asOf { condition += " AND occurred_at <= '\(asOf.description)'" }
        return "CREATE TEMP VIEW events AS SELECT * FROM store.events WHERE \(condition)"
    }

    /// Folds `projections` as they were at `time` into tables of `states`, each from
    /// its newest usable snapshot (returned), copied into the table when `copyBase`.
    @discardableResult
    private func materialise(
        _ projections: [Projection], at time: TemporalSelection, key: String? = nil, into states: TemporaryStates,
        end: Int64? = nil, created: Bool = false, copyBase: Bool, options: TemporalOptions
    ) throws -> [SnapshotView?] {
        guard !projections.isEmpty else { return [] }
        let end = try end ?? temporalEnd(time)
        var runs: [ProjectionRun] = []
        var bases: [SnapshotView?] = []
        for projection in projections {
            let target = ReadModelTarget(projection: projection.name, kind: .temporary, columns: projection.columns)
            var base: SnapshotView?
            if options.useSnapshots {
                // Through `states`' transaction, which all later reads of the snapshot share.
                base = try states.readStates { db in
                    try Snapshots.newestUsable(
                        db, schema: "store", projection: projection, asOf: time.asOf, knownAt: time.knownAt, maxSeq: end,
                        warn: { logger.warning("\($0)") })
                }
            }
            try states.writeStates { db in
                if !created { try db.execute(sql: target.createSQL) }
                if let base, copyBase { try SnapshotStates.restore(db, base, into: target, schema: "store", key: key) }
            }
            let run = try ProjectionRun(
                projection: projection, target: target, position: base?.seq ?? 0, limits: options.limits,
                parallel: options.parallel)
            if !copyBase { run.base = base }
            runs.append(run)
            bases.append(base)
        }
        var replay = ReplayOptions()
        replay.parallel = options.parallel
        replay.limits = options.limits
        replay.checkpointSeconds = .infinity  // nothing to resume: write once, at the end
        var selection = EventSelection(types: [], asOf: time.asOf)
        if let key, projections.count == 1, projections[0].key == .stream { selection.stream = key }
        try pass(runs, end: end, selection: selection, options: replay, states: states)
        if let failure = runs.compactMap(\.failure).first { throw failure }
        return bases
    }
}
