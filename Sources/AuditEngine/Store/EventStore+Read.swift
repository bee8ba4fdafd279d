import GRDB

extension EventStore {
    /// Calls `body` with each event the filter selects, in seq order, from one
    /// consistent snapshot of the log (appends made meanwhile are not seen).
    ///
    /// - Complexity: streams rows from SQLite; memory does not grow with the log.
    public func forEachEvent(_ filter: EventFilter = EventFilter(), _ body: (StoredEvent) throws -> Void) throws {
        try readTransaction { db in
            let (sql, arguments) = try filter.query(db)
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try rows.next() {
                try body(StoredEvent(row: row))
            }
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
