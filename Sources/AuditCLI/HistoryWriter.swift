import AuditEngine

/// Writes the steps of `explain` and `state --history`: with `--format table`, what each
/// event changed instead of the whole state (shown whole, as the last column); CSV
/// has both; JSON lines keep their fields.
struct HistoryWriter {
    private var writer: ResultWriter
    private let format: OutputFormat
    private var previous: JSONValue?

    init(format: OutputFormat, spreadsheetSafe: Bool = false) throws {
        self.format = format
        let columns: [String]
        switch format {
        case .table: columns = ["seq", "occurred_at", "type", "id", "changed"]
        case .csv: columns = ["seq", "occurred_at", "type", "id", "changed", "state"]
        case .json, .jsonl: columns = ["seq", "occurred_at", "type", "id", "state"]
        }
        writer = try ResultWriter(columns: columns, format: format, rawJSONColumns: ["state"], spreadsheetSafe: spreadsheetSafe)
    }

    mutating func row(_ step: ExplainStep) throws {
        var values: [SQLValue] = [.integer(step.event.seq), .text(step.event.occurredAt.description), .text(step.event.type), .text(step.event.id)]
        if format == .table || format == .csv {
            let state = try? JSONParser.parse(step.state)
            values.append(.text(state.map { StateChanges.describe(StateChanges.between(previous, $0)) } ?? ""))
            previous = state
        }
        if format != .table { values.append(.text(step.state)) }
        try writer.row(values)
    }

    mutating func finish() throws { try writer.finish() }
}
