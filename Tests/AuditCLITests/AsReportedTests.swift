import Foundation
import Testing

/// `--as-reported K`: a report rerun as it was made — the events recorded by K, the
/// projection code whose build was live at K (from the code history) and the saved
/// query's text recorded last by K — after the code, the query and the log changed.
@Suite("Reports as they were reported")
struct AsReportedTests {
    /// The time now, as the engine writes times (milliseconds, UTC).
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }

    /// The repository's projections and queries on the road-fines log; an export of
    /// outstanding_fines (which records its text); then K; then a changed query, a
    /// changed fine_balances (balances doubled), a rebuild, a late payment and a second
    /// export. Returns the folder and K.
    static func workspace() throws -> (TempDir, String) {
        let dir = try roadFinesWorkspace()
        try #require(try audit(["replay"], in: dir.path).status == 0)
        let first = try audit(["export", "--query", "outstanding_fines", "--format", "csv", "--out", "exports/1"], in: dir.path)
        try #require(first.status == 0, "\(first.stderr)")
        usleep(20_000)
        let k = now()
        usleep(20_000)
        try "SELECT count(*) AS n, sum(balance_cents) AS owed FROM fine_balances WHERE balance_cents > 0;\n"
            .write(toFile: dir.path + "/queries/outstanding_fines.sql", atomically: true, encoding: .utf8)
        let file = dir.path + "/projections/fine_balances.lua"
        let script = try String(contentsOfFile: file, encoding: .utf8)
        let doubled = script.replacingOccurrences(
            of: "s.balance_cents = s.amount_cents + s.expense_cents + s.penalty_cents - s.paid_cents",
            with: "s.balance_cents = 2 * (s.amount_cents + s.expense_cents + s.penalty_cents - s.paid_cents)")
        try #require(doubled != script)
        try doubled.write(toFile: file, atomically: true, encoding: .utf8)
        try #require(try audit(["replay"], in: dir.path).status == 0)
        try #require(try audit(["append", "--stream", "C18200", "--type", "Payment", "--data", #"{"paymentAmount":429.5}"#,
                                "--occurred-at", "2005-11-30T10:00:00Z"], in: dir.path).status == 0)
        try #require(try audit(["export", "--query", "outstanding_fines", "--format", "csv", "--out", "exports/2"], in: dir.path).status == 0)
        return (dir, k)
    }

    @Test("query NAME --as-reported K prints what the export made before K printed, with that code and text; later ones print the new")
    func query() throws {
        let (dir, k) = try Self.workspace()
        let reported = try audit(["query", "outstanding_fines", "--as-reported", k, "--format", "csv"], in: dir.path)
        #expect(reported.status == 0, "\(reported.stderr)")
        let exported = try String(contentsOfFile: dir.path + "/exports/1/result-000001.csv", encoding: .utf8)
        #expect(reported.stdout == exported)
        #expect(reported.stderr.contains("queries/outstanding_fines.sql has changed since"))
        // Now: the new text over the doubled balances, without the paid fine.
        let now = try audit(["query", "outstanding_fines", "--as-reported", Self.now(), "--format", "csv"], in: dir.path)
        #expect(now.stdout == (try audit(["query", "outstanding_fines", "--format", "csv"], in: dir.path)).stdout, "\(now.stderr)")
        #expect(now.stdout == (try String(contentsOfFile: dir.path + "/exports/2/result-000001.csv", encoding: .utf8)))
        #expect(now.stderr.isEmpty, "\(now.stderr)")
        // --sql at K: the code of the time (balances not doubled), over what was recorded by then.
        let sql = "SELECT sum(balance_cents) AS owed FROM fine_balances WHERE balance_cents > 0"
        let atK = try audit(["query", "--sql", sql, "--as-reported", k, "--format", "csv"], in: dir.path)
        let current = try audit(["query", "--sql", sql, "--format", "csv"], in: dir.path)
        let owed = { (r: CommandResult) in Int(r.stdout.split(separator: "\n")[1])! }
        #expect(owed(current) == 2 * (owed(atK) - 42_950), "\(atK.stdout) \(current.stdout)")
        #expect(atK.stderr.contains("runs the SQL given, not a text recorded"))
    }

    @Test("state --as-reported folds with the build live then; without a recorded text or build: exit 65 saying so")
    func stateAndRefusals() throws {
        let (dir, k) = try Self.workspace()
        let then = try audit(["state", "fine_balances", "V5222", "--as-reported", k], in: dir.path)
        let now = try audit(["state", "fine_balances", "V5222"], in: dir.path)
        #expect(then.stdout.contains(#""balance_cents":38698"#) && now.stdout.contains(#""balance_cents":77396"#), "\(then.stdout)\(then.stderr)")
        let noText = try audit(["query", "open_orders", "--as-reported", k], in: dir.path)
        #expect(noText.status == 65 && noText.stderr.contains("no text of query open_orders was recorded at or before"))
        let early = try audit(["state", "fine_balances", "--as-reported", "2020-01-01"], in: dir.path)
        #expect(early.status == 65 && early.stderr.contains("no build of it was live at 2020-01-01T23:59:59.999Z"), "\(early.stderr)")
        let both = try audit(["query", "outstanding_fines", "--as-reported", k, "--known-at", k], in: dir.path)
        #expect(both.status == 64)
    }

    @Test("the engine's QueryRecorded and CodeBuilt records: one per new text, chained, refused from users, unseen by '*'")
    func records() throws {
        let (dir, _) = try Self.workspace()
        let recorded = try audit(["events", "--type", "QueryRecorded"], in: dir.path)
        #expect(recorded.stdout.split(separator: "\n").count == 2, "\(recorded.stdout)")  // two texts, two exports
        #expect(try audit(["export", "--query", "outstanding_fines", "--format", "csv", "--out", "exports/3"], in: dir.path).status == 0)
        #expect(try audit(["events", "--type", "QueryRecorded"], in: dir.path).stdout.split(separator: "\n").count == 2)  // same text
        for (stream, type) in [("audit-query-outstanding_fines", "QueryRecorded"), ("audit-code-fine_balances", "CodeBuilt")] {
            let spoof = try audit(["append", "--stream", stream, "--type", type, "--data", "{}"], in: dir.path)
            #expect(spoof.status == 65 && spoof.stderr.contains("is a record the engine appends about itself"), "\(spoof.stderr)")
        }
        // The same through ingest, naming the line.
        let line = #"{"id":"q1","stream":"audit-query-x","type":"QueryRecorded","data":{}}"# + "\n"
        let ingested = try audit(["ingest", "-"], in: dir.path, stdin: line)
        #expect(ingested.status == 65 && ingested.stderr.contains("<stdin>:1: a \"QueryRecorded\" event") && ingested.stderr.contains("is a record the engine appends about itself"), "\(ingested.stderr)")
        // A catch-all projection sees the exports' outcomes but neither kind of record.
        try #"return { on = { ["*"] = function(s, e) s.n = (s.n or 0) + 1 end } }"#
            .write(toFile: dir.path + "/projections/all.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["replay", "--add", "all"], in: dir.path).status == 0)
        let keys = try audit(["state", "all", "--format", "csv"], in: dir.path).stdout
        #expect(keys.contains("audit-export-outstanding_fines,") && !keys.contains("audit-query-") && !keys.contains("audit-code-"), "\(keys)")
        #expect(try audit(["verify"], in: dir.path).status == 0)
        // An export lists the code of the projections its query read, as files of its own.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports/1")
        #expect(files.contains("code--fine_balances--fine_balances.lua") && files.contains("code--fine_balances--lib--money.lua"), "\(files)")
        let manifest = try String(contentsOfFile: dir.path + "/exports/1/manifest.json", encoding: .utf8)
        #expect(manifest.contains("code--fine_balances--lib--money.lua"))
    }
}
