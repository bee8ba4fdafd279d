@testable import AuditCLI
import Foundation
import Testing

/// `--spreadsheet-safe` (DECISIONS 19): numbers alone, `'` before other cells that
/// start with =, +, -, @, tab or CR; CSV only; exports stay byte-faithful.
@Suite("CSV for spreadsheets")
struct SpreadsheetSafeTests {
    static let cells: [(cell: String, safe: String)] = [
        ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-1+1", "'-1+1"), ("@cmd", "'@cmd"), ("\tx", "'\tx"), ("\rx", "'\rx"),
        ("-5", "-5"), ("+7", "+7"), ("-2.5e-3", "-2.5e-3"), ("-.5", "-.5"), ("-", "'-"), ("-e5", "'-e5"), ("1e", "1e"),
        ("plain", "plain"), ("", ""), ("a=b", "a=b"), (" =x", " =x"),
    ]

    @Test("which cells get a quote", arguments: cells)
    func cell(cell: String, safe: String) {
        #expect(SpreadsheetSafe.cell(cell) == safe)
    }

    @Test("query, events and state: protected with the flag, as stored without it; header names too")
    func commands() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["append", "--stream", "=HYPERLINK(\"x\")", "--type", "@T", "--data", #"{"v":"-1+1","n":-5}"#], in: dir.path)
        let sql = #"SELECT stream, type, json_extract(data, '$.v') AS v, json_extract(data, '$.n') AS n, -2.5 AS r, '+7' AS t, '' AS e, NULL AS "=h" FROM events"#
        let safe = try audit(["query", "--sql", sql, "--format", "csv", "--spreadsheet-safe"], in: dir.path)
        #expect(safe.status == 0, "\(safe.stderr)")
        #expect(safe.stdout == "stream,type,v,n,r,t,e,'=h\n\"'=HYPERLINK(\"\"x\"\")\",'@T,'-1+1,-5,-2.5,+7,,\n")
        let plain = try audit(["query", "--sql", sql, "--format", "csv"], in: dir.path)
        #expect(plain.stdout == "stream,type,v,n,r,t,e,=h\n\"=HYPERLINK(\"\"x\"\")\",@T,-1+1,-5,-2.5,+7,,\n")
        let events = try audit(["events", "--format", "csv", "--spreadsheet-safe"], in: dir.path)
        #expect(events.stdout.split(separator: "\n")[1].hasPrefix("1,"))
        #expect(events.stdout.contains(",\"'=HYPERLINK(\"\"x\"\")\",1,'@T,"))
    }

    @Test("only with --format csv; exports do not take it")
    func usage() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        for arguments in [["events", "--spreadsheet-safe"], ["query", "--sql", "SELECT 1", "--spreadsheet-safe"], ["projections", "--format", "json", "--spreadsheet-safe"]] {
            let result = try audit(arguments, in: dir.path)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.stderr == "audit: --spreadsheet-safe goes with --format csv\n")
        }
        #expect(try audit(["export", "--out", "x", "--format", "csv", "--spreadsheet-safe"], in: dir.path).status == 64)
    }
}
