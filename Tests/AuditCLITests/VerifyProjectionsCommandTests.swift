import Foundation
import Testing

@Suite("verify --projections from the command line")
struct VerifyProjectionsCommandTests {
    /// The road-fines log, replayed with the repository's projections.
    func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/projections", withDestinationPath: repositoryRoot + "/projections")
        _ = try audit(["init"], in: dir.path)
        _ = try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        return dir
    }

    @Test("an edited state is served by state, but verify --projections names it and exits 4; the other projections are ok")
    func editedState() throws {
        let dir = try workspace()
        let clean = try audit(["verify", "--projections"], in: dir.path)
        #expect(clean.status == 0, "\(clean.stderr)")
        let lines = clean.stdout.split(separator: "\n")
        // 390 events and the 4 builds' CodeBuilt events.
        #expect(lines.first?.hasPrefix(#"{"ok":true,"events":394,"#) == true)
        #expect(lines.contains(#"{"projection":"fine_balances","status":"ok","position":394,"keys":100}"#), "\(clean.stdout)")

        _ = try sqlite("UPDATE fine_balances SET state = replace(state, '\"status\":\"paid\"', '\"status\":\"open\"') WHERE key = 'S60957'", dir.path + "/audit.db")
        #expect(try audit(["state", "fine_balances", "S60957"], in: dir.path).stdout.contains(#""status":"open""#))
        #expect(try audit(["verify"], in: dir.path).status == 0)  // the log is intact
        let found = try audit(["verify", "--projections"], in: dir.path)
        #expect(found.status == 4)
        #expect(found.stdout.contains(#"{"projection":"fine_balances","status":"differs","position":394,"keys":100,"changed":1,"missing":0,"extra":0,"first":[{"key":"S60957","difference":"changed","detail":"state differs"}]}"#), "\(found.stdout)")
        #expect(found.stdout.contains(#"{"projection":"credit_collection_by_year","status":"ok""#))
        #expect(found.stderr.contains("audit: projection fine_balances differs from its rebuild from the log at seq 394: 1 changed, 0 missing, 0 extra (of 100 keys rebuilt); first: S60957 (changed: state differs)"), "\(found.stderr)")
        // Named: only those; --from-snapshots says that it trusts them.
        let named = try audit(["verify", "--projections", "credit_collection_by_year", "--from-snapshots"], in: dir.path)
        #expect(named.status == 0 && !named.stdout.contains("fine_balances"), "\(named.stderr)")
        #expect(named.stderr.contains("this check trusted them"))
        #expect(try audit(["verify", "--projections", "no_such"], in: dir.path).status == 64)
        #expect(try audit(["verify", "fine_balances"], in: dir.path).status == 64)
    }

    @Test("a state row changed into what the engine never writes (a second line, a forged key, not JSON, a blob) is refused by state and snapshot, exit 4, naming the key")
    func forgedStateRows() throws {
        let dir = try workspace()
        let db = dir.path + "/audit.db"
        let original = try sqlite("SELECT state FROM fine_balances WHERE key = 'S60957'", db)
        let forged = [
            #"'{"a":1}}' || char(10) || '{"key":"forged","state":{"balance":0}'"#, #"'{not json'"#, "'[1,2]'", "'null'",
            #"'{"a": 1}'"#, #"'{"a":"\x"}'"#, "X'7b7d'", #"'{"a":1}' || char(10)"#, #"'{"a":"' || char(9) || '"}'"#,
        ]
        for value in forged {
            _ = try sqlite("UPDATE fine_balances SET state = \(value) WHERE key = 'S60957'", db)
            for format in ["jsonl", "json", "csv", "table"] {
                let read = try audit(["state", "fine_balances", "--format", format], in: dir.path)
                #expect(read.status == 4 && !read.stdout.contains("forged"), "\(value) \(format): \(read.stdout)")
                #expect(read.stderr.contains(#"the table of projection fine_balances was changed outside audit, key "S60957""#), "\(read.stderr)")
            }
            #expect(try audit(["state", "fine_balances", "S60957"], in: dir.path).status == 4, "\(value)")
            #expect(try audit(["state", "fine_balances", "S45359"], in: dir.path).status == 0)
            let snapshot = try audit(["snapshot", "fine_balances"], in: dir.path)
            #expect(snapshot.status == 4, "\(value): \(snapshot.stderr)")
        }
        #expect(try sqlite("SELECT count(*) FROM snapshots", db) == "0")
        #expect(try audit(["verify", "--projections", "fine_balances"], in: dir.path).status == 4)
        _ = try sqlite("UPDATE fine_balances SET state = '\(original)' WHERE key = 'S60957'", db)
        #expect(try audit(["state", "fine_balances", "--format", "csv"], in: dir.path).status == 0)
    }

    @Test("verify compares the code history with its CodeBuilt events: an edited text, a removed, changed or forged build row, a removed file (exit 4); --as-reported reads the builds from the events")
    func codeHistory() throws {
        let dir = try workspace()
        let db = dir.path + "/audit.db"
        let asReported = ["state", "fine_balances", "S60957", "--as-reported", "2100-01-01"]
        let expected = try audit(asReported, in: dir.path)
        #expect(expected.status == 0 && expected.stdout.contains(#""status":"paid""#), "\(expected.stderr)")
        let pristine = try Data(contentsOf: URL(fileURLWithPath: db))
        let edits: [(String, String)] = [
            ("UPDATE audit_code SET content = replace(content, 'paid', 'PAID')", "that does not hash to it"),
            ("DELETE FROM audit_builds", "seq 392: audit_builds omits the build its CodeBuilt event records"),
            ("UPDATE audit_builds SET code_hash = 'x' WHERE event_seq = 392", "seq 392: audit_builds' row for its build differs from the CodeBuilt event (code_hash)"),
            ("UPDATE audit_builds SET version = 7, handled_types = '[]' WHERE event_seq = 392", "(version, handled_types)"),
            ("INSERT INTO audit_builds VALUES (5, 'fine_balances', 'y', 1, '[]', 't')", "seq 5: audit_builds lists a build at seq 5, but no CodeBuilt event is there"),
            ("DELETE FROM audit_code WHERE content LIKE '%fine%'", "audit_code lacks fine_balances.lua"),
        ]
        for (edit, text) in edits {
            try pristine.write(to: URL(fileURLWithPath: db))
            _ = try sqlite(edit, db)
            let verified = try audit(["verify"], in: dir.path)
            #expect(verified.status == 4 && verified.stderr.contains(text), "\(edit): \(verified.stderr)")
            #expect(verified.stderr.contains("the code history was altered"), "\(edit): \(verified.stderr)")
        }
        // The builds are the events': with the index emptied, --as-reported still finds its build.
        try pristine.write(to: URL(fileURLWithPath: db))
        _ = try sqlite("DELETE FROM audit_builds", db)
        let fromEvents = try audit(asReported, in: dir.path)
        #expect(fromEvents.status == 0 && fromEvents.stdout == expected.stdout, "\(fromEvents.stderr)")
        // Wiped whole (as a database from before the code history has it), it is refused when read.
        _ = try sqlite("DELETE FROM audit_builds; DELETE FROM audit_code", db)
        let wiped = try audit(asReported, in: dir.path)
        #expect(wiped.status == 4 && wiped.stderr.contains("the code history was altered"), "\(wiped.stderr)")
    }

    @Test("a limit hit by the rebuild could not check (exit 1), and a table without code too")
    func couldNotCheck() throws {
        // A handler that loads in a few instructions and runs a few thousand per event.
        let busy = TempDir()
        try FileManager.default.createDirectory(atPath: busy.path + "/projections", withIntermediateDirectories: true)
        try "return { on = { Payment = function(s, e) for i = 1, 2000 do s.n = i end end } }\n"
            .write(toFile: busy.path + "/projections/spin.lua", atomically: true, encoding: .utf8)
        _ = try audit(["init"], in: busy.path)
        _ = try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: busy.path)
        #expect(try audit(["replay"], in: busy.path).status == 0)
        let tight = try audit(["verify", "--projections", "spin", "--instructions", "100"], in: busy.path)
        #expect(tight.status == 1 && tight.stderr.contains("could not check projection spin: the rebuild stopped at a limit"), "\(tight.stderr)")
        #expect(tight.stdout.contains(#""status":"could_not_check""#))
        let dir = try workspace()
        // A folder lacking a projection the database holds.
        try FileManager.default.removeItem(atPath: dir.path + "/projections")
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/projections/fine_balances.lua", toPath: dir.path + "/projections/fine_balances.lua")
        try FileManager.default.copyItem(atPath: repositoryRoot + "/projections/lib", toPath: dir.path + "/projections/lib")
        let partial = try audit(["verify", "--projections"], in: dir.path)
        #expect(partial.status == 1 && partial.stderr.contains("could not check projection credit_collection_by_year: the database holds its table, but projections/ has no code for it"), "\(partial.stderr)")
        #expect(partial.stdout.contains(#"{"projection":"fine_balances","status":"ok""#))
    }

    @Test("killed while it rebuilds, it leaves nothing in the temporary directory, and the store unchanged")
    func killed() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/projections/order_totals.lua", toPath: dir.path + "/projections/order_totals.lua")
        _ = try audit(["init"], in: dir.path)
        let lines = (0..<80_000).map { i in #"{"id":"e-\#(i)","stream":"order-\#(i % 20_000)","type":"\#(i < 20_000 ? "OrderPlaced" : "ItemAdded")","data":{"customer":"c","amount":3,"qty":1,"price":2}}"# }
        try lines.joined(separator: "\n").write(toFile: dir.path + "/orders.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["ingest", "orders.jsonl"], in: dir.path).status == 0)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let before = try sqlite("SELECT count(*), sum(total) FROM order_totals; SELECT hex(hash) FROM chain_head", dir.path + "/audit.db")
        let scratch = dir.path + "/tmp"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        // The chain is verified first, then the rebuild runs: kills at several moments.
        for delay: UInt32 in [500_000, 1_500_000, 3_000_000] {
            let running = try RunningCommand(["verify", "--projections"], in: dir.path, environment: ["TMPDIR": scratch, "SQLITE_TMPDIR": scratch])
            usleep(delay)
            kill(running.process.processIdentifier, SIGKILL)
            _ = running.wait()
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch) == [], "killed after \(delay / 1000) ms")
        }
        #expect(try sqlite("SELECT count(*), sum(total) FROM order_totals; SELECT hex(hash) FROM chain_head", dir.path + "/audit.db") == before)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("audit.db") }.sorted()
        #expect(!files.contains { $0.contains("verify") || $0.contains("tmp") }, "\(files)")
        let complete = try audit(["verify", "--projections"], in: dir.path, environment: ["TMPDIR": scratch, "SQLITE_TMPDIR": scratch])
        #expect(complete.status == 0 && complete.stdout.contains(#""keys":20000"#), "\(complete.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch) == [])
    }
}
