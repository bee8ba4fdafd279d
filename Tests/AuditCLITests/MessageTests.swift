@testable import AuditCLI
import Foundation
import Testing

/// Messages that say what to do: unknown projection names, the engine's words for
/// every error, negative numbers reaching their option's check.
@Suite("Messages")
struct MessageTests {
    /// An initialised workspace whose starter projection is built.
    func workspace() throws -> TempDir {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        try audit(["replay"], in: dir.path)
        return dir
    }

    static let typos: [[String]] = [
        ["state", "stream_activty"], ["state", "stream_activty", "S45359"], ["state", "stream_activty", "S45359", "--history"],
        ["state", "stream_activty", "--as-of", "2005-12-31"], ["explain", "stream_activty", "S45359"], ["test", "stream_activty"],
        ["snapshot", "stream_activty"], ["snapshot", "--list", "stream_activty"], ["replay", "stream_activty"],
    ]

    @Test("a projection name that is not there: exit 64, the closest name and the known ones", arguments: typos)
    func unknownProjection(arguments: [String]) throws {
        let dir = try workspace()
        let result = try audit(arguments, in: dir.path)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("audit: no projection stream_activty in projections/"), "\(result.stderr)")
        #expect(result.stderr.contains(": did you mean stream_activity? (known: stream_activity)\n"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test("a projection the database holds, without code in the folder, can still be read")
    func projectionOnlyInTheDatabase() throws {
        let dir = try workspace()
        try FileManager.default.removeItem(atPath: dir.path + "/projections/stream_activity.lua")
        let result = try audit(["state", "stream_activity", "S45359"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix(#"{"key":"S45359","state":{"events":5"#))
        // The name in another case is the same projection (as SQLite compares table names).
        #expect(try audit(["state", "Stream_Activity", "S45359"], in: dir.path).stdout == result.stdout)
    }

    @Test("query: a missing table lists the tables and the closest one; a JSON path in double quotes gets a hint")
    func queryHints() throws {
        let dir = try workspace()
        let table = try audit(["query", "--sql", "SELECT * FROM stream_activty"], in: dir.path)
        #expect(table.status == 65)
        #expect(table.stderr == "audit: --sql: no such table: stream_activty (did you mean stream_activity? the tables are: events, stream_activity)\n")
        let quotes = try audit(["query", "--sql", #"SELECT json_extract(state, "$.events") FROM stream_activity"#], in: dir.path)
        #expect(quotes.status == 65)
        #expect(quotes.stderr == #"audit: --sql: no such column: $.events ("$.events" in double quotes is a column's name in SQL; write text in single quotes: '$.events')"# + "\n")
        let neither = try audit(["query"], in: dir.path)
        #expect(neither.status == 64)
        #expect(neither.stderr.hasPrefix("Error: give a saved query's name (queries/NAME.sql) or --sql SQL\n"))
    }

    static let negatives: [(arguments: [String], message: String)] = [
        (["events", "--limit", "-1"], "Error: --limit must be 0 or more\n"),
        (["append", "--stream", "s", "--type", "T", "--data", "{}", "--expected-version", "-1"],
         "Error: --expected-version must be a number 0 or more, 'none' or 'any', not '-1'\n"),
        (["replay", "--parallel", "-2"], "Error: --parallel must be from 1 to 256\n"),
        (["replay", "--batch-size", "-5"], "Error: --batch-size must be at least 1\n"),
        (["events", "--as-of", "-7d"], "Error: The value '-7d' is invalid for '--as-of <time>': date must be YYYY-MM-DD (relative times"),
    ]

    @Test("a negative number reaches its option's check instead of 'Missing value'", arguments: negatives)
    func negativeNumbers(arguments: [String], message: String) throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let result = try audit(arguments, in: dir.path)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix(message), "\(result.stderr)")
        #expect(!result.stderr.contains("Missing value"))
    }

    @Test("NegativeValues joins only an option's negative-number value")
    func joining() {
        #expect(NegativeValues.join(["events", "--limit", "-1", "--format", "csv"]) == ["events", "--limit=-1", "--format", "csv"])
        #expect(NegativeValues.join(["state", "x", "--as-of", "-.5"]) == ["state", "x", "--as-of=-.5"])
        #expect(NegativeValues.join(["state", "--history", "-k"]) == ["state", "--history", "-k"])
        #expect(NegativeValues.join(["--limit=-1"]) == ["--limit=-1"])
        #expect(NegativeValues.join(["--", "--limit", "-1"]) == ["--", "--limit", "-1"])
    }

    @Test("ingest of a directory says so, in words")
    func ingestDirectory() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try FileManager.default.createDirectory(atPath: dir.path + "/folder", withIntermediateDirectories: true)
        let result = try audit(["ingest", "folder"], in: dir.path)
        #expect(result.status == 1)
        #expect(result.stderr == "audit: cannot read folder: it is a directory; give a file of JSON lines, or - for standard input\n")
    }

    @Test("a message never writes a raw control character: a NUL or an escape sequence from the input is shown as \\u0000")
    func controlCharacters() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let lines = [
            #"{"id":"c1","stream\u0000":"s","type":"T","data":{}}"#,
            #"{"id":"c2","stream":"s","type":"T","data":{},"occurred_at":"2024-01-01T00:00:00Z\u0000"}"#,
            #"{"id":"c3","stream":"s","type":"T","data":{},"\u001b[31mred":1}"#,
        ]
        for line in lines {
            let result = try audit(["ingest", "-"], in: dir.path, stdin: line + "\n")
            #expect(result.status == 65, "\(result.stderr)")
            #expect(!result.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(Array(result.stderr.utf8))")
            #expect(result.stderr.contains(#"\u00"#), "\(result.stderr)")
        }
    }

    @Test("a projection whose first build failed says so when read, not that it was never built; projections names it once")
    func failedFirstBuild() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path + "/projections") where name.hasSuffix(".lua") || name.hasSuffix(".test") {
            try FileManager.default.removeItem(atPath: dir.path + "/projections/" + name)
        }
        try "return { on = { T = function(s, e) s.n = s.n + 1 end } }".write(toFile: dir.path + "/projections/bad.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["ingest", "-"], in: dir.path, stdin: #"{"id":"e1","stream":"s1","type":"T","data":{}}"# + "\n").status == 0)
        #expect(try audit(["replay"], in: dir.path).status == 65)
        for command in [["state", "bad", "s1"], ["query", "--sql", "SELECT * FROM bad"]] {
            let read = try audit(command, in: dir.path)
            #expect(read.status == 65 && read.stderr.contains("its first build failed, so it has no table yet ("), "\(command): \(read.stderr)")
            #expect(!read.stderr.contains("never been built"), "\(read.stderr)")
        }
        let listed = try audit(["projections"], in: dir.path)
        #expect(listed.status == 65 && listed.stderr.contains("audit: projection bad failed at seq "), "\(listed.stderr)")
        #expect(!listed.stderr.contains("projection bad: projection bad"), "\(listed.stderr)")
        #expect(try audit(["--read-only", "snapshot", "--list"], in: dir.path).status == 0)
    }

    @Test("a missing projections folder is a usage error everywhere, in the same words")
    func missingFolder() throws {
        let dir = TempDir()
        try audit(["init", "--projections", "p"], in: dir.path)
        for arguments in [["replay"], ["test"], ["explain", "x", "k"], ["projections"], ["query", "--sql", "SELECT 1", "--as-of", "2005-01-01"]] {
            let result = try audit(arguments, in: dir.path)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.stderr == "audit: no projections folder at projections (run `audit init`, or pass --projections DIR)\n", "\(arguments)")
        }
    }

    enum RawFailure: Error { case io(String) }
    struct RawStruct: Error { var code = 3 }

    @Test("an error of no engine type is never shown as a Swift value")
    func errorText() {
        #expect(ErrorText.describe(RawFailure.io("Is a directory")) == "an unexpected error (AuditCLITests.MessageTests.RawFailure); please report it with the command that caused it")
        #expect(!ErrorText.describe(RawStruct()).contains("code"))
        let missing = CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: "/nowhere/x"])
        #expect(ErrorText.describe(missing).hasSuffix("(/nowhere/x)"))
        #expect(!ErrorText.describe(missing).contains("CocoaError"))
    }

    /// Every error type the sources declare says what went wrong in words: it is an
    /// `AuditFailure` or `CustomStringConvertible`, or one of the few that never leave
    /// the function that throws them.
    @Test("every error type in the sources has a description in words")
    func everyErrorTypeHasWords() throws {
        let localOnly: Set<String> = ["IngestAborted", "Compiled", "OutputClosed", "RawFailure", "RawStruct"]
        let declaration = try NSRegularExpression(pattern: #"(?:struct|enum|class) (\w+)\s*:\s*([^{]*\bError\b[^{]*)\{"#)
        var checked = 0
        for folder in ["Sources/AuditEngine", "Sources/AuditCLI"] {
            let root = repositoryRoot + "/" + folder
            for file in FileManager.default.enumerator(atPath: root)!.compactMap({ $0 as? String }) where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
                for match in declaration.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let name = String(text[Range(match.range(at: 1), in: text)!])
                    let conformances = String(text[Range(match.range(at: 2), in: text)!])
                    checked += 1
                    guard !localOnly.contains(name) else { continue }
                    #expect(conformances.contains("CustomStringConvertible") || conformances.contains("AuditFailure"), "\(file): \(name)")
                }
            }
        }
        #expect(checked > 10)
    }
}
