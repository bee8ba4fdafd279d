/// How a query export runs its SQL: the one place to change when temporal queries land.
extension EventStore {
    /// Runs a saved query for an export, calling `header` with the column names and
    /// then `row` with each row.
    ///
    /// Without a time option it is `query(sql:parameters:source:header:row:)` over the
    /// projections' current tables. `asOf`/`knownAt` need temporal queries over
    /// projections, which this build does not have yet: they are refused, rather than
    /// silently exporting today's state under a past date.
    func runExportQuery(
        sql: String, parameters: [String: String], asOf: Timestamp?, knownAt: Timestamp?, source: String,
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        if asOf != nil || knownAt != nil {
            throw ExportError(
                "\(source): --as-of and --known-at are not supported for query exports yet (this build has no temporal queries over projections); export the raw events with --as-of/--known-at, or export the query without a time",
                category: .invalidInput)
        }
        try query(sql: sql, parameters: parameters, source: source, header: header, row: row)
    }
}

/// The engine's version, written into export manifests and printed by `audit --version`.
public enum EngineVersion {
    public static let current = "0.1.0"
}
