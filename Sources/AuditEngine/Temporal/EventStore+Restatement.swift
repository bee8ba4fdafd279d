extension EventStore {
    /// The keys whose state as of `asOf` differs between what the log held at
    /// `knownAt` and at `comparedTo`: added (a state only at `comparedTo`), removed
    /// (only at `knownAt`) and changed (both, with their old and new states), in key
    /// order; only `key`'s with a key. A key parked in one answer and not the other (or
    /// parked since another seq) is changed even when its state is the same: the one
    /// answer held a last good state, the other the state of all its events.
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
        var parked: [[String: Int64]] = [[:], [:]]
        try forEachStateBytes(projection, at: points, key: key, options: options, parked: { parked[$0] = $1 }) { point, key, state in
            StateRecords.append(key, state, to: &records[point])
            counts[point] += 1
        }
        let runs = (0..<2).map { StateRun(sorted: records[$0], count: counts[$0]) }
        let (old, new) = forward ? (RunCursor(runs[0]), RunCursor(runs[1])) : (RunCursor(runs[1]), RunCursor(runs[0]))
        let (oldParked, newParked) = forward ? (parked[0], parked[1]) : (parked[1], parked[0])
        func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
        while old.key != nil || new.key != nil {
            let order = old.key.map { o in new.key.map { SortedStates.compare(o, $0) } ?? -1 } ?? 1
            if order < 0 {
                let key = text(old.key!)
                try body(Restatement.StateChange(change: .removed, key: key, old: text(old.state), new: nil, oldParked: oldParked[key]))
                old.advance()
            } else if order > 0 {
                let key = text(new.key!)
                try body(Restatement.StateChange(change: .added, key: key, old: nil, new: text(new.state), newParked: newParked[key]))
                new.advance()
            } else {
                let key = text(old.key!)
                let (wasParked, isParked) = (oldParked[key], newParked[key])
                if SortedStates.compare(old.state, new.state) != 0 || wasParked != isParked {
                    try body(Restatement.StateChange(
                        change: .changed, key: key, old: text(old.state), new: text(new.state), oldParked: wasParked, newParked: isParked))
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
