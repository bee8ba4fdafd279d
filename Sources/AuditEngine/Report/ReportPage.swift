/// A report as one self-contained HTML page: a title, the chart over `as_of` with its
/// legend, the table of the series beneath it, and a footer with the selection, the
/// code hashes of the projections read and the chain head. No script, no external
/// resource of any kind (the fonts are the reader's own generic families); readable
/// in print and without colour (each line has its own dash and marker shape).
package struct ReportPage: Sendable {
    package var title: String
    package var chart: ReportLines
    package var unit: SeriesPoints.Unit
    package var columns: [String]
    package var rows: [[SQLValue]]
    /// What was asked: the query's source and text, the series, the known-at time.
    package var selection: [(String, String)]
    /// The projections read: name and code hash.
    package var code: [(String, String)]
    package var head: (seq: Int64, hash: String)
    /// When and by what it was made ("2024-06-30T12:00:00.000Z by audit 1.2").
    package var made: String

    package init(
        title: String, chart: ReportLines, unit: SeriesPoints.Unit, columns: [String], rows: [[SQLValue]],
        selection: [(String, String)], code: [(String, String)], head: (seq: Int64, hash: String), made: String
    ) {
        (self.title, self.chart, self.unit, self.columns, self.rows) = (title, chart, unit, columns, rows)
        (self.selection, self.code, self.head, self.made) = (selection, code, head, made)
    }

    static let style = """
        body{font-family:sans-serif;color:#111;background:#fff;margin:24px;max-width:1000px}
        h1{font-size:20px;margin:0 0 12px}
        .chart{display:block;max-width:100%;height:auto}
        .chart .label{font-size:12px;fill:#111}
        .chart .grid{stroke:#ddd;stroke-width:1}
        .chart .axis{stroke:#111;stroke-width:1}
        .line{fill:none;stroke:#444;stroke-width:1.5}
        .legend{list-style:none;padding:0;margin:8px 0 16px;display:flex;flex-wrap:wrap;gap:6px 24px;font-size:13px}
        .legend li{display:flex;align-items:center;gap:6px}
        table{border-collapse:collapse;font-size:12px;margin-top:8px}
        th,td{border:1px solid #999;padding:2px 8px;text-align:left}
        td.n{text-align:right;font-variant-numeric:tabular-nums}
        footer{margin-top:16px;font-size:11px;color:#333;border-top:1px solid #999;padding-top:8px}
        footer dt{font-weight:bold}footer dd{margin:0 0 4px 16px;word-break:break-all;white-space:pre-wrap}
        @media print{body{margin:0}tr,.chart{break-inside:avoid}}
        """

    package var html: String {
        var page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        page += "<title>\(HTML.escape(title))</title><style>\(Self.style)</style></head><body>\n"
        page += "<h1>\(HTML.escape(title))</h1>\n"
        page += ReportChart.svg(chart, unit: unit) + "\n"
        page += "<ul class=\"legend\">"
        for (i, line) in chart.lines.enumerated() {
            page += "<li>\(ReportChart.swatch(i))<span class=\"label legend-label\">\(HTML.escape(line.name))</span></li>"
        }
        page += "</ul>\n<table><thead><tr>"
        page += columns.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for row in rows {
            page += "<tr>" + row.map { v in v.number != nil ? "<td class=\"n\">\(HTML.escape(v.text))</td>" : "<td>\(HTML.escape(v.text))</td>" }.joined() + "</tr>\n"
        }
        page += "</tbody></table>\n<footer><dl>"
        for (name, value) in selection { page += "<dt>\(HTML.escape(name))</dt><dd>\(HTML.escape(value))</dd>" }
        page += "<dt>code</dt><dd>" + code.map { "\(HTML.escape($0.0)) \($0.1)" }.joined(separator: "\n") + "</dd>"
        page += "<dt>chain head</dt><dd>seq \(head.seq), hash \(head.hash)</dd>"
        page += "<dt>made</dt><dd>\(HTML.escape(made))</dd>"
        return page + "</dl></footer>\n</body></html>\n"
    }
}
