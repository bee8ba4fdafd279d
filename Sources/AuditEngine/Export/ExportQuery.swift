/// How a query export runs its SQL: the one place that decides how.
extension EventStore {
    /// Runs a saved query for an export, calling `header` with the column names and
    /// then `row` with each row.
    ///
    /// Without a time option it is `query(sql:parameters:source:header:row:)` over the
    /// projections' live tables. With `asOf`/`knownAt` it is the temporal
    /// `query(sql:parameters:source:at:projections:…)`: the projections the SQL reads are
    /// folded as they were at that time, from snapshots where possible.
    func runExportQuery(
        sql: String, parameters: [String: String], asOf: Timestamp?, knownAt: Timestamp?, projections: [Projection],
        source: String, header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        let time = TemporalSelection(asOf: asOf, knownAt: knownAt)
        if time.isCurrent {
            try query(sql: sql, parameters: parameters, source: source, header: header, row: row)
        } else {
            try query(sql: sql, parameters: parameters, source: source, at: time, projections: projections, header: header, row: row)
        }
    }
}

/// The engine's version, written into export manifests and printed by `audit --version`.
public enum EngineVersion {
    public static let current = "0.1.0"
}
