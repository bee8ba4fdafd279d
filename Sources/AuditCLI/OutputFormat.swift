import AuditEngine
import ArgumentParser

/// The result formats of CONTRACT §2.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// One JSON array.
    case json
    /// One JSON object a line.
    case jsonl
    /// A header line, then RFC 4180 rows.
    case csv
    /// Aligned columns for people.
    case table
}

/// Writes rows of text cells in one of the tabular formats, streaming.
///
/// `table` aligns columns over pages of `pageSize` rows, so that listing a large log
/// keeps constant memory; each page repeats no header but keeps its own widths.
/// Widths are display columns (`TableText`): CJK and emoji take two, combining marks
/// none; control characters are escaped, so a value can never break a row.
struct TabularWriter {
    let columns: [String]
    let format: OutputFormat
    /// CSV cells that a spreadsheet would run as formulas get a `'` (`--spreadsheet-safe`).
    var spreadsheetSafe = false
    var output = Output()
    private var page: [[String]] = []
    private var wroteHeader = false
    static let pageSize = 500
    static let maxCellWidth = 60

    init(columns: [String], format: OutputFormat) {
        precondition(format == .csv || format == .table)
        self.columns = columns
        self.format = format
    }

    mutating func row(_ cells: [String]) throws {
        switch format {
        case .csv:
            if !wroteHeader {
                try output.line(csvRecord(columns))
                wroteHeader = true
            }
            try output.line(csvRecord(cells))
        default:
            page.append(cells)
            if page.count >= TabularWriter.pageSize { try flushPage() }
        }
    }

    mutating func finish() throws {
        if format == .csv, !wroteHeader { try output.line(csvRecord(columns)) }
        if format == .table { try flushPage(force: !wroteHeader) }
        try output.flush()
    }

    private func csvRecord(_ cells: [String]) -> String {
        (spreadsheetSafe ? cells.map(SpreadsheetSafe.cell) : cells).map(CSV.field).joined(separator: ",")
    }

    private mutating func flushPage(force: Bool = false) throws {
        guard !page.isEmpty || force else { return }
        let cells = page.map { row in row.enumerated().map { TabularWriter.display($1, last: $0 == row.count - 1) } }
        let header = columns.map { TabularWriter.display($0, last: false) }
        var widths = header.map(TableText.width)
        for row in cells {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], TableText.width(cell)) }
        }
        func render(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : TableText.padded(cell, columns: widths[i])
            }.joined(separator: "  ")
        }
        if !wroteHeader {
            try output.line(render(header))
            // The last column's rule as wide as a cut cell at most: it is shown whole.
            let rules = widths.enumerated().map { i, w in i == widths.count - 1 ? max(TableText.width(header[i]), min(w, TabularWriter.maxCellWidth)) : w }
            try output.line(render(rules.map { String(repeating: "-", count: $0) }))
            wroteHeader = true
        }
        for row in cells { try output.line(render(row)) }
        page.removeAll(keepingCapacity: true)
    }

    /// A cell as shown in a table: one line, control characters escaped; long values
    /// cut with an ellipsis at `maxCellWidth` columns, except in the last column, which
    /// aligns nothing after it and is shown whole.
    private static func display(_ cell: String, last: Bool) -> String {
        let text = TableText.escaped(cell)
        return last ? text : TableText.truncated(text, columns: maxCellWidth)
    }
}

enum CSV {
    /// One RFC 4180 field: quoted when it holds a comma, quote, CR or LF (the engine's
    /// rule, so that exports and command output agree).
    static func field(_ text: String) -> String {
        CSVText.field(text)
    }
}
