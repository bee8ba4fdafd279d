extension EventStore {
    /// Runs one read-only SQL statement at every point of `series` (see `query(sql:…at:…)`),
    /// in one pass over the log: one result whose first column, `as_of`, is the point's
    /// boundary, followed by the rows the statement gives at that point, exactly those
    /// a separate question at the point gives. `reading` is told the projections the
    /// statement reads (the ones folded), after `header`.
    ///
    /// The projections are folded forward from point to point, not from a snapshot per
    /// point (see `PointFold` for late events, and for projections keyed by a function
    /// or `global`, which fall back to a fold per point once a late event needs one).
    /// `projections` are the code to run: the workspace's, or code the caller loaded
    /// from elsewhere.
    /// - Throws: `QueryError` when the statement already returns a column `as_of`.
    /// - Complexity: one pass over the events up to the last point, and the statement
    ///   once per point.
    package func query(
        sql: String, parameters: [String: String] = [:], source: String = "--sql", series: SeriesPoints,
        projections: [Projection], options: TemporalOptions = TemporalOptions(),
        header: ([String]) throws -> Void, reading: ([Projection]) throws -> Void = { _ in }, row: ([SQLValue]) throws -> Void
    ) throws {
        let boundaries = series.boundaries
        try query(
            sql: sql, parameters: parameters, source: source, at: series.selections, projections: projections, options: options,
            header: { columns in
                if let clash = columns.first(where: { $0.lowercased() == "as_of" }) {
                    throw QueryError(
                        source: source,
                        message: "the query returns a column named \"\(clash)\", and a series adds as_of itself: rename that column (… AS another_name)")
                }
                try header(["as_of"] + columns)
            },
            reading: reading,
            row: { point, values in try row([.text(boundaries[point].description)] + values) })
    }

    /// Calls `body(boundary, key, state)` for a projection's states at every point of
    /// `series` (as `forEachStateBytes(_:at:key:options:_:)` at each), in one pass:
    /// the points in order, each point's keys in key order. `parked(boundary, keys)` is
    /// told, before a point's first state, the keys parked in that point's answer (key ->
    /// first seq not folded), as a single question's are.
    package func forEachStateBytes(
        _ projection: Projection, series: SeriesPoints, key: String? = nil, options: TemporalOptions = TemporalOptions(),
        parked: (Timestamp, [String: Int64]) throws -> Void = { _, _ in },
        _ body: (Timestamp, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let boundaries = series.boundaries
        try forEachStateBytes(
            projection, at: series.selections, key: key, options: options, parked: { point, keys in try parked(boundaries[point], keys) }
        ) { point, key, state in
            try body(boundaries[point], key, state)
        }
    }
}
