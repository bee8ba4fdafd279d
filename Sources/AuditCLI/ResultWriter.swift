import AuditEngine

/// Writes query-shaped results (named columns of SQL values) in any of the formats.
struct ResultWriter {
    let columns: [String]
    let format: OutputFormat
    /// Columns whose text is JSON, written as JSON (not as a string) in json/jsonl.
    let rawJSONColumns: Set<String>
    private var output = Output()
    private var tabular: TabularWriter?
    private var count = 0

    init(columns: [String], format: OutputFormat, rawJSONColumns: Set<String> = [], spreadsheetSafe: Bool = false) throws {
        self.columns = columns
        self.format = format
        self.rawJSONColumns = rawJSONColumns
        if format == .csv || format == .table {
            tabular = TabularWriter(columns: columns, format: format)
            tabular!.spreadsheetSafe = spreadsheetSafe
        }
        if format == .json { try output.line("[") }
    }

    /// One row; in json/jsonl, `members` (name, JSON text) follow the columns in its
    /// object (CSV and tables have no place for them).
    mutating func row(_ values: [SQLValue], members: [(String, String)] = []) throws {
        if tabular != nil {
            try tabular!.row(values.map(\.text))
            return
        }
        let object = "{" + (zip(columns, values).map { column, value in
            if rawJSONColumns.contains(column), case .text(let text) = value { return json(column) + ":" + text }
            return json(column) + ":" + value.json
        } + members.map { json($0.0) + ":" + $0.1 }).joined(separator: ",") + "}"
        try output.line(format == .json ? (count == 0 ? object : "," + object) : object)
        count += 1
    }

    mutating func finish() throws {
        if tabular != nil {
            try tabular!.finish()
            return
        }
        if format == .json { try output.line("]") }
        try output.flush()
    }

    static func write(columns: [String], rows: [[SQLValue]], format: OutputFormat, spreadsheetSafe: Bool = false) throws {
        var writer = try ResultWriter(columns: columns, format: format, spreadsheetSafe: spreadsheetSafe)
        for row in rows { try writer.row(row) }
        try writer.finish()
    }
}
