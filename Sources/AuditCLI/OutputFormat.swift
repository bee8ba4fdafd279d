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
struct TabularWriter {
    let columns: [String]
    let format: OutputFormat
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
                try output.line(columns.map(CSV.field).joined(separator: ","))
                wroteHeader = true
            }
            try output.line(cells.map(CSV.field).joined(separator: ","))
        default:
            page.append(cells)
            if page.count >= TabularWriter.pageSize { try flushPage() }
        }
    }

    mutating func finish() throws {
        if format == .csv, !wroteHeader { try output.line(columns.map(CSV.field).joined(separator: ",")) }
        if format == .table { try flushPage(force: !wroteHeader) }
        try output.flush()
    }

    private mutating func flushPage(force: Bool = false) throws {
        guard !page.isEmpty || force else { return }
        let cells = page.map { $0.map(TabularWriter.display) }
        var widths = columns.map(\.count)
        for row in cells {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        if !wroteHeader {
            try output.line(render(columns))
            try output.line(render(widths.map { String(repeating: "-", count: $0) }))
            wroteHeader = true
        }
        for row in cells { try output.line(render(row)) }
        page.removeAll(keepingCapacity: true)
    }

    /// A cell as shown in a table: one line, long values cut with an ellipsis.
    private static func display(_ cell: String) -> String {
        var text = cell.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: " ")
        if text.count > maxCellWidth { text = String(text.prefix(maxCellWidth - 1)) + "…" }
        return text
    }
}

enum CSV {
    /// One RFC 4180 field: quoted when it holds a comma, quote, CR or LF (the engine's
    /// rule, so that exports and command output agree).
    static func field(_ text: String) -> String {
        CSVText.field(text)
    }
}
