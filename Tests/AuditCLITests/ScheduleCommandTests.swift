import Foundation
import Testing

@Suite("Scheduled exports from the command line")
struct ScheduleCommandTests {
    func workspace(_ toml: String) throws -> TempDir {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path)
        try toml.write(toFile: dir.path + "/audit.toml", atomically: true, encoding: .utf8)
        return dir
    }

    /// `schedule list --format jsonl`, one object per export.
    func list(_ dir: TempDir) throws -> (rows: [[String: Any]], result: CommandResult) {
        let result = try audit(["schedule", "list", "--format", "jsonl"], in: dir.path)
        let rows = result.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        return (rows, result)
    }

    // Yearly, so that the latest slot (January 1st) stays the latest while the test runs.
    static let report = """
        [exports.report]
        what = "query:report"
        destination = "exports/report"
        schedule = "0 0 1 1 *"
        """

    @Test("a failed slot: list shows it failed, with its error, and due with its retry; --once waits for the backoff; --retry-failed runs it now")
    func failedSlot() throws {
        let dir = try workspace(Self.report)
        let first = try audit(["schedule", "run", "--once"], in: dir.path)
        #expect(first.status == 1 && first.stdout.contains(#""status":"failed""#) && first.stderr.contains("no such saved query"), "\(first)")

        // The query is still missing: a problem, exit 1, and the slot failed and due.
        var (rows, result) = try list(dir)
        #expect(result.status == 1 && result.stderr.contains("audit: export report: ") && result.stderr.contains("no such saved query"), "\(result.stderr)")
        var row = try #require(rows.first)
        #expect(row["last_status"] as? String == "failed" && row["attempts"] as? Int == 1)
        #expect((row["last_error"] as? String)?.contains("no such saved query") == true)
        #expect((row["problems"] as? String)?.contains("queries/report.sql: no such saved query") == true)
        #expect(row["due"] as? String == row["last_slot"] as? String && row["due"] is String)
        let retryAt = try #require(row["retry_at"] as? String)
        #expect(row["last_directory"] is NSNull)

        // Fixed: no problem any more. A plain --once waits for the retry's time …
        try FileManager.default.createDirectory(atPath: dir.path + "/queries", withIntermediateDirectories: true)
        try "SELECT count(*) AS n FROM events".write(toFile: dir.path + "/queries/report.sql", atomically: true, encoding: .utf8)
        (rows, result) = try list(dir)
        #expect(result.status == 0 && rows.first?["problems"] is NSNull, "\(result.stderr)")
        let waiting = try audit(["schedule", "run", "--once"], in: dir.path)
        if try #require(instant(retryAt)) > Date() {
            #expect(waiting.status == 0 && waiting.stdout.isEmpty, "\(waiting)")
        }
        // … and --retry-failed runs it now.
        let retried = try audit(["schedule", "run", "--once", "--retry-failed"], in: dir.path)
        #expect(retried.status == 0 && retried.stdout.contains(#""status":"completed""#), "\(retried)")
        (rows, _) = try list(dir)
        row = try #require(rows.first)
        #expect(row["last_status"] as? String == "completed" && row["attempts"] as? Int == 2 && row["due"] is NSNull && row["retry_at"] is NSNull)
        #expect((row["last_directory"] as? String)?.hasSuffix("/exports/report/report-000001") == true)
        #expect(try audit(["schedule", "run", "--once", "--retry-failed"], in: dir.path).stdout.isEmpty)
        #expect(try audit(["schedule", "run", "--retry-failed"], in: dir.path).status == 64)
    }

    @Test("list shows the next slot in the schedule's zone as well as in UTC")
    func localTime() throws {
        let dir = try workspace("timezone = \"Europe/Berlin\"\n" + Self.report.replacingOccurrences(of: "0 0 1 1 *", with: "15 2 * * sun")
            .replacingOccurrences(of: "query:report", with: "events"))
        let row = try #require(try list(dir).rows.first)
        let utc = try #require(row["next_slot"] as? String), local = try #require(row["next_slot_local"] as? String)
        #expect(row["timezone"] as? String == "Europe/Berlin")
        #expect(local.hasSuffix("+01:00") || local.hasSuffix("+02:00"), "\(local)")
        #expect(instant(local) != nil && instant(local) == instant(utc))
        // A Sunday slot at 02:15 local, or 03:00 on the day the clock skips 02:15.
        #expect(local.dropFirst(11).hasPrefix("02:15:00.000") || local.dropFirst(11).hasPrefix("03:00:00.000"), "\(local)")
    }

    @Test("list names a signing key others can read, and a missing one; a mistyped top-level value is exit 65 naming it")
    func problemsAndTypes() throws {
        let dir = try workspace("signing_key = \"keys/export.key\"\n" + Self.report.replacingOccurrences(of: "query:report", with: "events"))
        #expect(try audit(["keygen", "keys/export.key"], in: dir.path).status == 0)
        var result = try list(dir).result
        #expect(result.status == 0, "\(result.stderr)")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir.path + "/keys/export.key")
        result = try list(dir).result
        #expect(result.status == 1 && result.stderr.contains("can be read by other users (mode 644); run `chmod 600"), "\(result.stderr)")
        try FileManager.default.removeItem(atPath: dir.path + "/keys/export.key")
        result = try list(dir).result
        #expect(result.status == 1 && result.stderr.contains("cannot read the signing key") && result.stderr.contains("No such file"), "\(result.stderr)")

        for (line, says) in [
            ("signing_key = 5", #"audit.toml:1: "signing_key" must be a string, such as "keys/export.key", not an integer (5)"#),
            ("timezone = 5", #"audit.toml:1: "timezone" must be a string, such as "Europe/Berlin", not an integer (5)"#),
            ("timezon = \"UTC\"", #"unknown key "timezon" (did you mean "timezone"?"#),
        ] {
            try (line + "\n" + Self.report).write(toFile: dir.path + "/audit.toml", atomically: true, encoding: .utf8)
            for command in [["schedule", "list"], ["schedule", "run", "--once"]] {
                let bad = try audit(command, in: dir.path)
                #expect(bad.status == 65 && bad.stderr.contains(says) && bad.stdout.isEmpty, "\(command): \(bad.stderr)")
            }
        }
    }
}

/// An RFC 3339 time with milliseconds and any offset.
func instant(_ text: String) -> Date? {
    let parser = ISO8601DateFormatter()
    parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return parser.date(from: text)
}
