import Foundation
import Testing

@Suite("The audit command line")
struct CommandLineTests {
    @Test("the README's example: init, ingest the road-fines log, list events, verify")
    func readmeExample() throws {
        let dir = TempDir()
        #expect(try audit(["init"], in: dir.path).status == 0)
        let ingest = try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        #expect(ingest.status == 0)
        #expect(ingest.stdout == #"{"appended":390,"duplicates":0,"last_seq":390}"# + "\n")
        let events = try audit(["events", "--stream", "S45359"], in: dir.path)
        #expect(events.status == 0)
        #expect(events.stdout.split(separator: "\n").count == 5)
        #expect(events.stdout.hasPrefix(#"{"seq":1,"id":"road-fines-242","stream":"S45359","version":1,"type":"Create Fine","occurred_at":"2000-03-14T23:00:00.000Z""#))
        let verify = try audit(["verify"], in: dir.path)
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix(#"{"ok":true,"events":390,"head":""#))
        #expect(try audit(["init"], in: dir.path).status == 0)  // again: changes nothing
        #expect(try audit(["events"], in: dir.path).stdout.split(separator: "\n").count == 390)
    }

    @Test("--db, then $AUDIT_DB, then ./audit.db")
    func databaseSelection() throws {
        let dir = TempDir()
        #expect(try audit(["--db", "a.db", "init"], in: dir.path).status == 0)
        #expect(try audit(["init"], in: dir.path, environment: ["AUDIT_DB": "b.db"]).status == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(files.contains("a.db") && files.contains("b.db") && !files.contains("audit.db"))
        let missing = try audit(["events"], in: dir.path)
        #expect(missing.status == 1 && missing.stderr.contains("run `audit init`"))
    }

    @Test("append prints the stored event; a conflict exits 3 with the actual version")
    func appendAndConflict() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let first = try audit(
            ["append", "--stream", "order-1", "--type", "OrderPlaced", "--data", #"{"amount":25}"#, "--meta", #"{"actor":"ann"}"#,
             "--occurred-at", "2024-06-30T14:00:00+02:00", "--id", "o1", "--expected-version", "none"], in: dir.path)
        #expect(first.status == 0)
        #expect(first.stdout.hasPrefix(#"{"seq":1,"id":"o1","stream":"order-1","version":1,"type":"OrderPlaced","occurred_at":"2024-06-30T12:00:00.000Z","recorded_at":""#))
        #expect(first.stdout.contains(#""data":{"amount":25},"meta":{"actor":"ann"},"hash":""#))
        let conflict = try audit(["append", "--stream", "order-1", "--type", "X", "--data", "{}", "--expected-version", "none"], in: dir.path)
        #expect(conflict.status == 3)
        #expect(conflict.stderr.contains("the stream is at version 1"))
        #expect(conflict.stdout.isEmpty)
    }

    static let badInvocations: [([String], Int32)] = [
            (["append", "--stream", "s", "--type", "T"], 64),
            (["append", "--stream", "s", "--type", "T", "--data", "{}", "--expected-version", "soon"], 64),
            (["events", "--as-of", "last tuesday"], 64),
            (["events", "--format", "xml"], 64),
            (["frobnicate"], 64),
            (["append", "--stream", "s", "--type", "T", "--data", "[1]"], 65),
            (["append", "--stream", "s", "--type", "T", "--data", "{bad"], 65),
            (["append", "--stream", "", "--type", "T", "--data", "{}"], 65),
            (["append", "--stream", "s", "--type", "T", "--data", "{}", "--occurred-at", "2024-01-01"], 65),
        ]

    @Test("exit codes: 64 usage, 65 invalid input", arguments: badInvocations)
    func exitCodes(arguments: [String], status: Int32) throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let result = try audit(arguments, in: dir.path)
        #expect(result.status == status, "\(result.stderr)")
        #expect(!result.stderr.isEmpty)
        #expect(try audit(["verify"], in: dir.path).stdout.contains(#""events":0"#))
    }

    @Test("ingest reads stdin and reports bad lines as FILE:LINE: reason, exit 65, nothing appended")
    func ingestStdinAndBadLines() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let good = #"{"id":"a1","stream":"a","type":"T","data":{}}"# + "\n" + #"{"id":"b1","stream":"b","type":"T","data":{}}"# + "\n"
        let ok = try audit(["ingest", "-"], in: dir.path, stdin: good)
        #expect(ok.stdout == #"{"appended":2,"duplicates":0,"last_seq":2}"# + "\n")
        let bad = try audit(["ingest"], in: dir.path, stdin: good + #"{"id":"c1","stream":"c","type":"T","data":5}"# + "\n")
        #expect(bad.status == 65)
        #expect(bad.stderr.contains(#"<stdin>:3: "data" must be a JSON object, not a number"#))
        #expect(bad.stdout.isEmpty)
        #expect(try audit(["verify"], in: dir.path).stdout.contains(#""events":2"#))
    }

    @Test("verify exits 4 naming the bad seq and the dropped trigger")
    func verifyFailure() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sqlite.arguments = [dir.path + "/audit.db", "DROP TRIGGER events_are_not_updated; UPDATE events SET data = json_set(data, '$.amount', 1) WHERE seq = 7"]
        try sqlite.run()
        sqlite.waitUntilExit()
        let result = try audit(["verify"], in: dir.path)
        #expect(result.status == 4)
        #expect(result.stderr.contains("integrity check failed: 2 problems"))
        #expect(result.stderr.contains("the schema was altered: trigger events_are_not_updated is missing"))
        #expect(result.stderr.contains("seq 7: the stored event does not match its hash"))
    }

    @Test("events formats: json array, csv with header and quoting, table")
    func formats() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["append", "--stream", "s", "--type", "Note", "--data", #"{"text":"a, \"b\""}"#], in: dir.path)
        let json = try audit(["events", "--format", "json"], in: dir.path).stdout
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        #expect(parsed?.count == 1 && parsed?[0]["type"] as? String == "Note")
        let csv = try audit(["events", "--format", "csv"], in: dir.path).stdout.split(separator: "\n")
        #expect(csv[0] == "seq,id,stream,version,type,occurred_at,recorded_at,data,meta,hash")
        #expect(csv[1].contains(#","{""text"":""a, \""b\""""}",{},"#))
        let table = try audit(["events", "--format", "table"], in: dir.path).stdout.split(separator: "\n")
        #expect(table.count == 3 && table[0].hasPrefix("seq  id") && table[2].hasPrefix("1    "))
        let empty = try audit(["events", "--format", "csv", "--type", "None"], in: dir.path).stdout
        #expect(empty == "seq,id,stream,version,type,occurred_at,recorded_at,data,meta,hash\n")
    }
}

@Suite("audit init")
struct InitTests {
    @Test("init makes a workspace whose starter projection and query work on the example log, and changes nothing the second time")
    func starter() throws {
        let dir = TempDir()
        #expect(try audit(["init"], in: dir.path).status == 0)
        let projection = dir.path + "/projections/stream_activity.lua"
        #expect(FileManager.default.fileExists(atPath: projection))
        try "-- edited".write(toFile: projection, atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path).status == 0)
        #expect(try String(contentsOfFile: projection, encoding: .utf8) == "-- edited")
        try FileManager.default.removeItem(atPath: dir.path + "/projections")
        try FileManager.default.removeItem(atPath: dir.path + "/queries")
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let tests = try audit(["test"], in: dir.path)
        #expect(tests.status == 0 && tests.stdout.hasSuffix("2 cases in 1 file: 2 passed, 0 failed\n"), "\(tests.stdout)\(tests.stderr)")
        let top = try audit(["query", "busiest_streams", "--param", "limit=2", "--format", "csv"], in: dir.path)
        #expect(top.status == 0, "\(top.stderr)")
        #expect(top.stdout.split(separator: "\n").count == 3)
    }

    @Test("query refuses what is not a query, inline and saved, now and at a past time; no file is made")
    func notAQuery() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try "ATTACH DATABASE 'saved.db' AS z".write(toFile: dir.path + "/queries/attach.sql", atomically: true, encoding: .utf8)
        for time in [[], ["--known-at", "2100-01-01"], ["--as-of", "2100-01-01"]] {
            for source in [["--sql", "ATTACH DATABASE 'inline.db' AS z"], ["attach"], ["--sql", "COMMIT"], ["--sql", "PRAGMA writable_schema=1"]] {
                let result = try audit(["query"] + source + time, in: dir.path)
                #expect(result.status == 65 && result.stderr.contains("not a query: it is a"), "\(source) \(time): \(result.stderr)")
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(!files.contains("inline.db") && !files.contains("saved.db"))
    }
}
