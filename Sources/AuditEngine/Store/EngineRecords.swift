/// The records the engine appends to the log about itself, on system streams:
/// `CodeBuilt` (`CodeHistory`, one per build a replay promotes, stream `audit-code-NAME`)
/// and `QueryRecorded` (`QueryTexts`, one per new text of a saved query an export or
/// report ran, stream `audit-query-NAME`). They are chained like every event. They
/// reach only a handler named for their type, never `on["*"]` (the sandbox's
/// `is_engine_record` says the same): a catch-all projection would fold the record of
/// its own build and lag behind the log after every replay. The same type on any other
/// stream is an ordinary event. (Export outcomes, on `audit-export-NAME`, are not among
/// them: they are events about the exports, which a projection may count.)
enum EngineRecords {
    /// Whether an event of `type` on `stream` is one of the engine's records.
    static func contains(type: String, stream: String) -> Bool {
        switch type {
        case CodeHistory.eventType: stream.utf8.starts(with: "audit-code-".utf8)
        case QueryTexts.eventType: stream.utf8.starts(with: "audit-query-".utf8)
        default: false
        }
    }

    /// `contains` as a SQL condition on `events`, by each stream prefix's byte range
    /// ('.' is the byte after '-'), so that no SQL function is called per row.
    static let condition = """
        ((type = '\(CodeHistory.eventType)' AND stream >= 'audit-code-' AND stream < 'audit-code.') \
        OR (type = '\(QueryTexts.eventType)' AND stream >= 'audit-query-' AND stream < 'audit-query.'))
        """
}
