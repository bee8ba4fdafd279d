import GRDB

extension EventStore {
    /// Appends an event the engine records about itself (an export's outcome, a build's
    /// code, a query's text) to a system stream, in write transaction `db`: it is chained like any other
    /// event, so `verify` covers it.
    ///
    /// - Returns: its seq.
    @discardableResult
    func appendSystemEvent(_ db: Database, stream: String, type: String, data: JSONValue, actor: String) throws -> Int64 {
        let event = NewEvent(
            stream: stream, type: type, data: data,
            meta: .object([JSONMember("actor", .string(actor)), JSONMember("engine_version", .string(EngineVersion.current))]))
        let prepared = try PreparedEvent(event, engineRecord: true)
        let writer = try EventWriter(db)
        _ = try writer.write(prepared)
        try writer.finish()
        return writer.lastSeq
    }
}
