extension EventStore {
    /// The keys whose state as of `asOf` differs between what the log held at
    /// `knownAt` and at `comparedTo`: added (a state only at `comparedTo`), removed
    /// (only at `knownAt`) and changed (both, with their old and new states), in key
    /// order; only `key`'s with a key.
    ///
    /// Both answers come from one pass (the earlier time's events are a prefix of the
    /// later's); either time may be the earlier one.
    /// - Complexity: the two answers' states are held in memory, as serialised records.
    package func compareStates(
        _ projection: Projection, asOf: Timestamp?, knownAt: Timestamp, comparedTo: Timestamp, key: String? = nil,
        options: TemporalOptions = TemporalOptions(), _ body: (Restatement.StateChange) throws -> Void
    ) throws {
        let forward = knownAt <= comparedTo
        let points = [forward ? knownAt : comparedTo, forward ? comparedTo : knownAt].map { TemporalSelection(asOf: asOf, knownAt: $0) }
        var records: [[UInt8]] = [[], []]
        var counts = [0, 0]
        try forEachStateBytes(projection, at: points, key: key, options: options) { point, key, state in
            StateRecords.append(key, state, to: &records[point])
            counts[point] += 1
        }
        let runs = (0..<2).map { StateRun(sorted: records[$0], count: counts[$0]) }
        let (old, new) = forward ? (RunCursor(runs[0]), RunCursor(runs[1])) : (RunCursor(runs[1]), RunCursor(runs[0]))
        func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
        while old.key != nil || new.key != nil {
            let order = old.key.map { o in new.key.map { SortedStates.compare(o, $0) } ?? -1 } ?? 1
            if order < 0 {
                try body(Restatement.StateChange(change: .removed, key: text(old.key!), old: text(old.state), new: nil))
                old.advance()
            } else if order > 0 {
                try body(Restatement.StateChange(change: .added, key: text(new.key!), old: nil, new: text(new.state)))
                new.advance()
            } else {
                if SortedStates.compare(old.state, new.state) != 0 {
                    try body(Restatement.StateChange(change: .changed, key: text(old.key!), old: text(old.state), new: text(new.state)))
                }
                old.advance()
                new.advance()
            }
        }
    }

    /// The rows of a query as of `asOf` that differ between what the log held at
    /// `knownAt` and at `comparedTo` (see `Restatement.compare`), from one pass.
    package func compareQuery(
        sql: String, parameters: [String: String] = [:], source: String = "--sql", asOf: Timestamp?, knownAt: Timestamp,
        comparedTo: Timestamp, keys: [String] = [], projections: [Projection], options: TemporalOptions = TemporalOptions()
    ) throws -> Restatement.QueryChanges {
        let forward = knownAt <= comparedTo
        let points = [forward ? knownAt : comparedTo, forward ? comparedTo : knownAt].map { TemporalSelection(asOf: asOf, knownAt: $0) }
        var columns: [String] = []
        var rows: [[[SQLValue]]] = [[], []]
        try query(
            sql: sql, parameters: parameters, source: source, at: points, projections: projections, options: options,
            header: { names in
                _ = try Restatement.keyColumns(keys, of: names, source: source)  // before anything is folded
                columns = names
            }, row: { point, values in rows[point].append(values) })
        let (old, new) = forward ? (rows[0], rows[1]) : (rows[1], rows[0])
        return try Restatement.compare(columns: columns, old: old, new: new, keys: keys, source: source)
    }
}
