import Foundation
import Testing

/// Series, restatements and reports from the command line, on the real road-fines log
/// with a late payment: each point of a series prints exactly what a separate
/// `--as-of` question prints, in every format.
@Suite("Series, restatements and reports from the command line")
struct SeriesCommandTests {
    /// The repository's projections and queries, the road-fines log, and a payment for
    /// C18200 made on 2005-11-30 but recorded now; returns the folder and a time
    /// between the log and the payment.
    static func workspace() throws -> (TempDir, String) {
        let dir = try roadFinesWorkspace()
        usleep(20_000)
        let before = try #require(try audit(["events", "--format", "jsonl"], in: dir.path).stdout.split(separator: "\n").last)
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(before.utf8)) as? [String: Any])["recorded_at"] as! String
        usleep(20_000)
        let late = try audit(["append", "--stream", "C18200", "--type", "Payment", "--data", #"{"paymentAmount":429.5}"#,
                              "--occurred-at", "2005-11-30T10:00:00Z"], in: dir.path)
        try #require(late.status == 0, "\(late.stderr)")
        return (dir, recorded)
    }

    /// The boundaries of quarters from 2005-04-01 to 2006-06-30 (five).
    static let quarters = ["2005-06-30", "2005-09-30", "2005-12-31", "2006-03-31", "2006-06-30"].map { $0 + "T23:59:59.999Z" }

    /// A series' arguments and boundaries: quarters of 2005–06 as of each; or, known at
    /// each, yesterday and today (the log was recorded today: known at yesterday's end,
    /// it held nothing).
    static func range(_ each: String) -> (arguments: [String], points: [String]) {
        guard each == "--known-at-each" else { return (["--as-of-each", "quarter", "--from", "2005-04-01", "--to", "2006-06-30"], quarters) }
        let day = 86_400.0, today = (Date().timeIntervalSince1970 / day).rounded(.down) * day
        let dates = [today - day, today].map { ISO8601DateFormatter.string(from: Date(timeIntervalSince1970: $0), timeZone: .gmt, formatOptions: [.withFullDate]) }
        return (["--known-at-each", "day", "--from", dates[0], "--to", dates[1]], dates.map { $0 + "T23:59:59.999Z" })
    }

    /// A table's cells, split at runs of two or more spaces (its column gaps).
    static func cells(_ line: Substring) -> [String] {
        line.replacing(#/ {2,}/#, with: "\t").split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
    }

    @Test("query --as-of-each gives, in every format, exactly the rows of a separate --as-of question at each boundary")
    func querySeriesEqualsSeparateQuestions() throws {
        let (dir, _) = try Self.workspace()
        for format in ["csv", "jsonl", "json", "table"] {
            for each in ["--as-of-each", "--known-at-each"] {
                let (arguments, points) = Self.range(each)
                let series = try audit(["query", "outstanding_fines"] + arguments + ["--format", format], in: dir.path)
                try #require(series.status == 0, "\(series.stderr)")
                var expected: [[String]] = []
                var header: [String] = []
                for point in points {
                    var time = ["--as-of", point]
                    if each == "--known-at-each" { time += ["--known-at", point] }
                    let one = try audit(["query", "outstanding_fines"] + time + ["--format", format], in: dir.path)
                    try #require(one.status == 0, "\(one.stderr)")
                    switch format {
                    case "csv":
                        let lines = one.stdout.split(separator: "\n")
                        header = ["as_of," + lines[0]]
                        expected += lines.dropFirst().map { [point + "," + $0] }
                    case "jsonl":
                        expected += one.stdout.split(separator: "\n").map { [#"{"as_of":""# + point + #"","# + $0.dropFirst()] }
                    case "json":
                        let rows = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as! [[String: Any]]
                        expected += rows.map { row in (["as_of": point] as [String: Any]).merging(row) { a, _ in a } }
                            .map { [String(decoding: try! JSONSerialization.data(withJSONObject: $0, options: .sortedKeys), as: UTF8.self)] }
                    default:
                        let lines = one.stdout.split(separator: "\n")
                        header = ["as_of"] + Self.cells(lines[0])
                        expected += lines.dropFirst(2).map { [point] + Self.cells($0) }
                    }
                }
                var actual: [[String]]
                switch format {
                case "csv": actual = series.stdout.split(separator: "\n").map { [String($0)] }
                case "jsonl": actual = series.stdout.split(separator: "\n").map { [String($0)] }
                case "json":
                    actual = (try JSONSerialization.jsonObject(with: Data(series.stdout.utf8)) as! [[String: Any]])
                        .map { [String(decoding: try! JSONSerialization.data(withJSONObject: $0, options: .sortedKeys), as: UTF8.self)] }
                default:
                    let lines = series.stdout.split(separator: "\n")
                    actual = [Self.cells(lines[0])] + lines.dropFirst(2).map { Self.cells($0) }
                }
                if format == "csv" || format == "table" { expected = [header] + expected }
                #expect(actual == expected, "\(format) \(each)")
                #expect(expected.count > points.count, "the points hold rows")
            }
        }
    }

    @Test("state --as-of-each gives each boundary's states; the late payment shows as of 2005 and not as reported then")
    func stateSeries() throws {
        let (dir, before) = try Self.workspace()
        for each in ["--as-of-each", "--known-at-each"] {
            let (arguments, points) = Self.range(each)
            let series = try audit(["state", "fine_balances"] + arguments + ["--format", "jsonl"], in: dir.path)
            try #require(series.status == 0, "\(series.stderr)")
            var expected: [String] = []
            for point in points {
                let time = ["--as-of", point] + (each == "--known-at-each" ? ["--known-at", point] : [])
                let one = try audit(["state", "fine_balances"] + time + ["--format", "jsonl"], in: dir.path)
                expected += one.stdout.split(separator: "\n").map { #"{"as_of":""# + point + #"","# + $0.dropFirst() }
            }
            #expect(series.stdout.split(separator: "\n").map(String.init) == expected, "\(each)")
            #expect(expected.count >= 100, "the points hold states")
        }
        // One key: the 2005-12-31 point knows of the payment; known before it came, not.
        let now = try audit(["state", "fine_balances", "C18200", "--as-of-each", "year", "--from", "2005-01-01", "--to", "2005-12-31"], in: dir.path)
        let then = try audit(["state", "fine_balances", "C18200", "--as-of-each", "year", "--from", "2005-01-01", "--to", "2005-12-31", "--known-at", before], in: dir.path)
        #expect(now.stdout.contains(#""status":"paid""#) && then.stdout.contains(#""status":"open""#))
        #expect(now.stdout.hasPrefix(#"{"as_of":"2005-12-31T23:59:59.999Z","key":"C18200","#) && now.stdout.split(separator: "\n").count == 1)
    }

    @Test("series refuse what they cannot answer: an as_of column (65), a missing --from/--to, --as-of beside a series (64)")
    func seriesRefusals() throws {
        let (dir, _) = try Self.workspace()
        let clash = try audit(["query", "--sql", "SELECT 1 AS As_Of", "--as-of-each", "day", "--from", "2005-01-01", "--to", "2005-01-02"], in: dir.path)
        #expect(clash.status == 65 && clash.stderr.contains("as_of"), "\(clash.stderr)")
        for arguments in [["--as-of-each", "day", "--from", "2005-01-01"], ["--from", "2005-01-01", "--to", "2005-01-02"],
                          ["--as-of-each", "day", "--from", "2005-01-02", "--to", "2005-01-01"],
                          ["--as-of-each", "day", "--from", "2005-01-01", "--to", "2005-01-02", "--as-of", "2005-01-01"],
                          ["--as-of-each", "day", "--known-at-each", "day", "--from", "2005-01-01", "--to", "2005-01-02"]] {
            let result = try audit(["query", "outstanding_fines"] + arguments, in: dir.path)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
        }
    }

    @Test("--compare-known-at lists what the late payment restated: the key changed (state) and the row removed (query)")
    func restatements() throws {
        let (dir, before) = try Self.workspace()
        let state = try audit(["state", "fine_balances", "--as-of", "2005-12-31", "--known-at", before, "--compare-known-at", "2100-01-01", "--format", "jsonl"], in: dir.path)
        try #require(state.status == 0, "\(state.stderr)")
        let lines = state.stdout.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix(#"{"change":"changed","key":"C18200","old":{"#), "\(state.stdout)")
        #expect(lines.first?.contains(#""status":"open""#) == true && lines.first?.contains(#""status":"paid""#) == true)
        // Swapped times: the opposite change.
        let back = try audit(["state", "fine_balances", "--as-of", "2005-12-31", "--known-at", "2100-01-01", "--compare-known-at", before, "--format", "csv"], in: dir.path)
        #expect(back.stdout.split(separator: "\n").count == 2 && back.stdout.contains("changed,C18200"))
        // The saved query: C18200 no longer owes anything, so its row is removed; matched by fine.
        let query = try audit(["query", "outstanding_fines", "--as-of", "2005-12-31", "--known-at", before, "--compare-known-at", "2100-01-01", "--format", "csv"], in: dir.path)
        #expect(query.stdout == "change,fine,old_balance,new_balance,old_status,new_status,old_created_at,new_created_at\nremoved,C18200,429.5,,open,,2005-09-16T22:00:00.000Z,\n", "\(query.stdout)\(query.stderr)")
        let badKey = try audit(["query", "outstanding_fines", "--as-of", "2005-12-31", "--known-at", before, "--compare-known-at", "2100-01-01", "--key", "nope"], in: dir.path)
        #expect(badKey.status == 65 && badKey.stderr.contains("--key nope"))
        // Rows a key does not identify: a multiset difference of whole rows, with a note.
        let grouped = try audit(["query", "--sql", "SELECT status FROM fine_balances", "--as-of", "2005-12-31",
                                 "--known-at", before, "--compare-known-at", "2100-01-01", "--key", "status", "--format", "csv"], in: dir.path)
        #expect(grouped.status == 0 && grouped.stdout == "change,status\nremoved,open\nadded,paid\n", "\(grouped.stdout)\(grouped.stderr)")
        #expect(grouped.stderr.contains("do not identify the rows"))
    }

    @Test("report: one self-contained page (no script, nothing loaded) with the chart, the table and the footer; unclear lines exit 65 and write nothing")
    func report() throws {
        let (dir, _) = try Self.workspace()
        let sql = "SELECT count(*) AS fines, sum(balance_cents) / 100.0 AS outstanding FROM fine_balances WHERE balance_cents > 0"
        let made = try audit(["report", "--sql", sql, "--as-of-each", "year", "--from", "2000-01-01", "--to", "2013-12-31", "--out", "r.html"], in: dir.path)
        try #require(made.status == 0, "\(made.stderr)")
        let html = try String(contentsOfFile: dir.path + "/r.html", encoding: .utf8)
        for forbidden in ["<script", "http:", "https:", "src=", "url(", "@import", "<link", "@font-face"] {
            #expect(!html.lowercased().contains(forbidden), "the page holds \(forbidden)")
        }
        #expect(html.components(separatedBy: "class=\"marker\"").count - 1 == 2 * 14 + 2, "14 points of two lines, and two legend swatches")
        #expect(html.components(separatedBy: "<tr>").count - 1 == 1 + 14)
        let head = try audit(["verify"], in: dir.path).stdout
        let hash = try #require(try JSONSerialization.jsonObject(with: Data(head.utf8)) as? [String: Any])["head"] as! String
        #expect(html.contains("seq 391, hash \(hash)"))
        let code = html.matches(of: #/([a-z_]+) ([0-9a-f]{64})/#).map { String($0.output.1) }.filter { $0 != "hash" }
        #expect(code == ["fine_balances"], "the footer names the code read, and only it")
        #expect(html.contains("2013-12-31T23:59:59.999Z"))

        for (arguments, message) in [
            (["--sql", "SELECT status, count(*) AS n FROM fine_balances GROUP BY status"], "--series"),
            (["--sql", "SELECT status, count(*) AS n FROM fine_balances GROUP BY status", "--series", "nope"], "--series nope"),
            (["--sql", "SELECT status FROM fine_balances GROUP BY status", "--series", "status"], "no numeric column"),
            (["--sql", "SELECT key, balance FROM fine_balances", "--series", "key"], "more than 8 lines"),
        ] {
            let result = try audit(["report"] + arguments + ["--as-of-each", "year", "--from", "2000-01-01", "--to", "2013-12-31", "--out", "bad.html"], in: dir.path)
            #expect(result.status == 65 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/bad.html"))
        }
        let notSeries = try audit(["report", "--sql", sql, "--out", "bad.html"], in: dir.path)
        #expect(notSeries.status == 64)
    }
}
