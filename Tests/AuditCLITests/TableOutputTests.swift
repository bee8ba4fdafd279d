@testable import AuditCLI
import AuditEngine
import Foundation
import Testing

/// `--format table` for people: control characters escaped, columns aligned by the
/// columns a terminal gives each character; explain shows what changed; state's
/// declared columns spread into table and CSV columns.
@Suite("Table output")
struct TableOutputTests {
    static let widths: [(text: String, columns: Int)] = [
        ("abc", 3), ("漢字", 4), ("ｱｲ", 2), ("한국", 4), ("😀", 2), ("e\u{301}", 1), ("🇩🇪", 2), ("\u{2764}\u{FE0F}", 2),
        ("👨\u{200D}👩\u{200D}👧", 2), ("a\u{200B}b", 2), ("Ａ", 2), ("", 0),
    ]

    @Test("display width: CJK and emoji two columns, combining marks and format characters none", arguments: widths)
    func width(text: String, columns: Int) {
        #expect(TableText.width(text) == columns)
    }

    @Test("control characters, line separators and bidirectional controls are escaped")
    func escaping() {
        #expect(TableText.escaped("a\rb\nc\td") == #"a\rb\nc\td"#)
        #expect(TableText.escaped("x\u{2028}y\u{2029}z") == #"x\u{2028}y\u{2029}z"#)
        #expect(TableText.escaped("\u{1B}[31mred\u{7F}\u{85}") == #"\u{1B}[31mred\u{7F}\u{85}"#)
        #expect(TableText.escaped("abc\u{202E}def") == #"abc\u{202E}def"#)
        #expect(TableText.escaped("漢字 é") == "漢字 é")
    }

    @Test("a cut cell keeps to its columns, also in wide characters")
    func truncation() {
        let cut = TableText.truncated(String(repeating: "漢", count: 40), columns: 60)
        #expect(TableText.width(cut) <= 60 && cut.hasSuffix("…"))
        #expect(TableText.padded("漢", columns: 4) == "漢  ")
    }

    @Test("events --format table aligns hostile values by display width and never breaks a row")
    func alignment() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let streams = ["plain", "漢字の流れ", "e\u{301}e\u{301}", "😀😀", "cr\rhere", "ls\u{2028}sep", "🇩🇪flag"]
        for stream in streams {
            #expect(try audit(["append", "--stream", stream, "--type", "T", "--data", "{}"], in: dir.path).status == 0)
        }
        let table = try audit(["events", "--format", "table"], in: dir.path)
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == streams.count + 2)
        #expect(!table.stdout.contains("\r") && !table.stdout.contains("\u{2028}"))
        // The version column (after stream) starts at the same display column on every line.
        let header = String(lines[0])
        let column = TableText.width(String(header[..<header.range(of: "version")!.lowerBound]))
        for line in lines.dropFirst(2) {
            let text = String(line)
            var used = 0
            var prefix = ""
            for character in text {
                if used >= column { break }
                prefix.append(character)
                used += TableText.width(character)
            }
            #expect(used == column, "\(text)")
            #expect(text.dropFirst(prefix.count).hasPrefix("1 "), "\(text)")
        }
    }

    @Test("explain and state --history in a table show each event's changes, old → new, whole")
    func changes() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        for arguments in [["explain", "fine_balances", "S45359"], ["state", "fine_balances", "S45359", "--history"]] {
            let table = try audit(arguments + ["--format", "table", "--projections", repositoryRoot + "/projections"], in: dir.path)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.hasPrefix("seq  occurred_at               type                        id              changed\n"))
            #expect(table.stdout.contains(#"collection_at: (none) → "2002-04-09T22:00:00.000Z", status: "open" → "credit collection""#))
            #expect(table.stdout.contains("balance: 31.3 → 37.76, balance_cents: 3130 → 3776, expense_cents: 0 → 646\n"))
            let csv = try audit(arguments + ["--format", "csv", "--projections", repositoryRoot + "/projections"], in: dir.path)
            #expect(csv.stdout.hasPrefix("seq,occurred_at,type,id,changed,state\n"))
        }
    }

    @Test("changes: nested fields by path, removed fields, no change")
    func changeList() throws {
        let a = try JSONParser.parse(#"{"a":1,"b":{"c":"x","d":[1]},"gone":true}"#)
        let b = try JSONParser.parse(#"{"a":1,"b":{"c":"y","d":[1,2]},"new":{"n":0}}"#)
        #expect(StateChanges.describe(StateChanges.between(a, b)) == #"b.c: "x" → "y", b.d: [1] → [1,2], gone: true → (none), new.n: (none) → 0"#)
        #expect(StateChanges.describe(StateChanges.between(a, a)) == "(no change)")
    }

    @Test("state --format csv and table: key, the declared columns, then state (now and at a past time)")
    func declaredColumns() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        let projections = ["--projections", repositoryRoot + "/projections"]
        try audit(["replay", "fine_balances"] + projections, in: dir.path)
        for time in [[], ["--as-of", "2013-12-31"]] {
            let csv = try audit(["state", "fine_balances", "S45359", "--format", "csv"] + time + projections, in: dir.path)
            #expect(csv.status == 0, "\(csv.stderr)")
            let lines = csv.stdout.split(separator: "\n")
            #expect(lines.first == "key,balance,balance_cents,created_at,status,state")
            #expect(lines.dropFirst().first?.hasPrefix(#"S45359,100.35,10035,2000-03-14T23:00:00.000Z,credit collection,"{""amount_cents"":3130"#) == true)
            let table = try audit(["state", "fine_balances", "S45359", "--format", "table"] + time + projections, in: dir.path)
            #expect(table.stdout.hasPrefix("key     balance  balance_cents  created_at                status             state\n"), "\(table.stdout)")
        }
    }

    @Test("progress lines: an escape code only where TERM takes one")
    func terminal() {
        #expect(TerminalLine.rewrite("replay: 5%", escapes: true) == "\r" + "replay: 5%" + "\u{1B}[K")
        let plain = TerminalLine.rewrite("replay: 5%", escapes: false)
        #expect(!plain.contains("\u{1B}") && plain.hasPrefix("\rreplay: 5%") && plain.count == 1 + TerminalLine.plainWidth)
        #expect(!TerminalLine.clear(escapes: false).contains("\u{1B}"))
        #expect(!TerminalLine.supportsEscapes(term: "dumb") && !TerminalLine.supportsEscapes(term: nil) && !TerminalLine.supportsEscapes(term: ""))
        #expect(TerminalLine.supportsEscapes(term: "xterm-256color"))
    }
}
