import GRDB


extension EventStore {
    /// Calls `body` with each event the filter selects, in seq order, from one
    /// consistent snapshot of the log (appends made meanwhile are not seen).
    ///
    /// With a correlation id, the `event_correlations` index finds the candidates and
    /// each one's hashed `meta` must carry the id: an event the index names wrongly is
    /// dropped. The index is trusted to be complete (an event it omits is not found);
    /// `verify` rebuilds it from the log and reports any difference.
    ///
    /// - Complexity: streams rows from SQLite; memory does not grow with the log.
    public func forEachEvent(_ filter: EventFilter = EventFilter(), _ body: (StoredEvent) throws -> Void) throws {
        try readTransaction { db in try Self.forEachEvent(db, filter, body) }
    }

    /// `forEachEvent` inside read transaction `db`.
    static func forEachEvent(_ db: Database, _ filter: EventFilter, _ body: (StoredEvent) throws -> Void) throws {
        let statement = try filter.statement(db)
        let correlation = filter.correlationId.map { Array($0.utf8) }
        var remaining = filter.limit.map { max(0, $0) } ?? Int.max
        while remaining > 0, try statement.step() {
            if let correlation, CorrelationId.of(storedMeta: statement.text(8)) != correlation { continue }
            try body(StoredEvent(statement))
            remaining -= 1
        }
    }

    /// The events the filter selects, in seq order. Loads them all: for large logs
    /// prefer `forEachEvent`.
    public func events(_ filter: EventFilter = EventFilter()) throws -> [StoredEvent] {
        var result: [StoredEvent] = []
        try forEachEvent(filter) { result.append($0) }
        return result
    }
}
