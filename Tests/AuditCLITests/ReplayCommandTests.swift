import Foundation
import Testing

@Suite("Replay from the command line")
struct ReplayCommandTests {
    static let projection = """
        return {
          version = 1,
          on = {
            Placed = function(s, e) s.total = e.data.amount; s.n = 1 end,
            Added  = function(s, e) s.total = (s.total or 0) + e.data.amount; s.n = (s.n or 0) + 1 end,
          },
          columns = { total = "integer" },
        }
        """

    func workspace(events: Int) throws -> TempDir {
        try TempDir.workspace(projections: ["totals": Self.projection], events: (0..<events).map { i in
            #"{"stream":"o-\#(i % 2000)","type":"\#(i < 2000 ? "Placed" : "Added")","data":{"amount":\#(i % 97)}}"#
        })
    }

    func states(_ dir: TempDir) throws -> String {
        let result = try audit(["state", "totals"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout
    }

    @Test("audit snapshot of a projection behind the log takes it at the head the replay reaches, not at its first checkpoint")
    func snapshotAtHead() throws {
        let dir = try workspace(events: 5000)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let more = dir.path + "/more.jsonl"
        let lines = (5000..<30000).map { i in #"{"stream":"o-\#(i % 2000)","type":"Added","data":{"amount":\#(i % 97)}}"# }
        _ = FileManager.default.createFile(atPath: more, contents: Data(lines.joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", more], in: dir.path).status == 0)
        let head = try sqlite("SELECT seq FROM chain_head", dir.path + "/audit.db")
        let snapshot = try audit(["snapshot", "totals"], in: dir.path)
        #expect(snapshot.status == 0 && snapshot.stdout.contains(#""seq":\#(head),"#), "\(head): \(snapshot.stdout)\(snapshot.stderr)")
        #expect(try sqlite("SELECT group_concat(seq) FROM snapshots", dir.path + "/audit.db") == head)
    }

    @Test("--timings says on stderr where the replay's time went; without it, stderr stays quiet")
    func timings() throws {
        let dir = try workspace(events: 5_000)
        let quiet = try audit(["replay", "--batch-size", "1000"], in: dir.path)
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
        let told = try audit(["replay", "--rebuild", "--timings", "--parallel", "2"], in: dir.path)
        #expect(told.status == 0)
        #expect(told.stdout.contains(#""status":"rebuilt""#))
        let line = told.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("audit: replay took ") && line.contains(" s: folding ") && line.hasSuffix(" s"), "\(line)")
        for part in ["serialising states", "waiting for events", "for the checkpoint writer", "for the last checkpoint"] {
            #expect(line.contains(part), "\(part)")
        }
    }

    @Test("a projection whose states outgrow half its memory is named once on stderr, with what to do")
    func evictionWarned() throws {
        let dir = try workspace(events: 0)
        let lines = (0..<12_000).map { i in #"{"stream":"o-\#(i % 6_000)","type":"Placed","data":{"amount":\#(i % 97)}}"# }
        let file = dir.path + "/many.jsonl"
        _ = FileManager.default.createFile(atPath: file, contents: Data(lines.joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", file], in: dir.path).status == 0)
        let tight = try audit(
            ["replay", "--memory-mb", "3", "--batch-size", "500", "--checkpoint-every", "1000", "--parallel", "1", "--timings"], in: dir.path)
        #expect(tight.status == 0, "\(tight.stderr)")
        let warnings = tight.stderr.components(separatedBy: "\n").filter { $0.contains("outgrew half its memory limit") }
        #expect(warnings.count == 1, "\(tight.stderr)")
        #expect(warnings.first?.contains("projection totals") == true && warnings.first?.contains("--memory-mb") == true)
        #expect(tight.stderr.contains(" states back "))
        let ample = try audit(["replay", "--rebuild"], in: dir.path)
        #expect(ample.status == 0 && !ample.stderr.contains("outgrew"), "\(ample.stderr)")
    }

    @Test("kill -9 during a replay, then replay again: the same states as an uninterrupted replay")
    func killAndResume() throws {
        let clean = try workspace(events: 200_000)
        #expect(try audit(["replay"], in: clean.path).status == 0)
        let expected = try states(clean)

        let dir = try workspace(events: 200_000)
        let replay = try RunningCommand(["replay", "--checkpoint-every", "5000", "--batch-size", "1000"], in: dir.path)
        // Kill it once it has saved a checkpoint part-way.
        let position = killOnceBuilt(replay, "totals", past: 20_000, in: dir)
        #expect(position > 0 && position < 200_000)

        let resumed = try audit(["replay"], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains(#""status":"rebuilt","position":200000"#))
        #expect(try states(dir) == expected)
    }

    @Test("kill -9 while snapshots are taken between checkpoints: the resumed replay's snapshots answer as-of questions exactly")
    func killWithSnapshotsAhead() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try Self.projection.replacingOccurrences(of: "version = 1,", with: "version = 1, snapshot_every = 3000,")
            .write(toFile: dir.path + "/projections/totals.lua", atomically: true, encoding: .utf8)
        try audit(["init"], in: dir.path)
        let count = 80_000
        let lines = (0..<count).map { i in
            let time = String(format: "2024-01-01T%02d:%02d:%02dZ", i / 3600, i / 60 % 60, i % 60)
            return #"{"stream":"o-\#(i % 2000)","type":"\#(i < 2000 ? "Placed" : "Added")","occurred_at":"\#(time)","data":{"amount":\#(i % 97)}}"#
        }
        let file = dir.path + "/events.jsonl"
        _ = FileManager.default.createFile(atPath: file, contents: Data(lines.joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", file], in: dir.path).status == 0)

        // Checkpoints every 20,000 events, snapshots every 3,000: kill it when snapshots
        // exist past the last checkpoint.
        let replay = try RunningCommand(["replay", "--checkpoint-every", "20000", "--batch-size", "500"], in: dir.path)
        let deadline = Date().addingTimeInterval(60)
        var ahead = false
        while Date() < deadline, replay.process.isRunning {
            let out = try? sqlite(
                "SELECT (SELECT max(seq) FROM snapshots) > position AND position > 0 FROM projection_builds WHERE name = 'totals'",
                dir.path + "/audit.db")
            if out == "1" { ahead = true; break }
            usleep(2_000)
        }
        #expect(replay.process.isRunning, "the replay finished before it could be killed")
        kill(replay.process.processIdentifier, SIGKILL)
        _ = replay.wait()
        #expect(ahead, "no snapshot was taken past a checkpoint before the kill")

        let resumed = try audit(["replay"], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains(#""status":"rebuilt","position":\#(count)"#))
        let seqs = try sqlite("SELECT group_concat(seq) FROM snapshots", dir.path + "/audit.db")
        #expect(seqs.split(separator: ",").count >= 5, "\(seqs)")
        // Each answer from a snapshot equals the one folded from seq 1.
        for i in [2_999, 3_000, 17_777, 30_001, 55_555, 79_999] {
            let time = String(format: "2024-01-01T%02d:%02d:%02dZ", i / 3600, i / 60 % 60, i % 60)
            let fast = try audit(["state", "totals", "--as-of", time], in: dir.path)
            let slow = try audit(["state", "totals", "--as-of", time, "--no-snapshots"], in: dir.path)
            #expect(fast.status == 0 && slow.status == 0, "\(fast.stderr)\(slow.stderr)")
            #expect(fast.stdout == slow.stdout, "as of \(time)")
            #expect(!fast.stderr.contains("damaged"), "\(fast.stderr)")
        }
    }

    @Test("state --as-of prints what state prints for the same states, in every format, keys escaped")
    func asOfFormats() throws {
        let dir = try workspace(events: 10)
        try #"return { key = function(e) return e.stream .. ' "q\\' end, on = { Placed = function(s, e) s.n = e.data.amount end } }"#
            .write(toFile: dir.path + "/projections/odd.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        for format in ["jsonl", "json", "csv", "table"] {
            let now = try audit(["state", "odd", "--format", format], in: dir.path)
            let then = try audit(["state", "odd", "--as-of", "2999-12-31", "--format", format], in: dir.path)
            #expect(now.status == 0 && then.status == 0, "\(now.stderr)\(then.stderr)")
            #expect(then.stdout == now.stdout, "\(format)")
        }
        let lines = try audit(["state", "odd", "--as-of", "2999-12-31"], in: dir.path).stdout.split(separator: "\n")
        #expect(lines.count == 10 && lines[0] == #"{"key":"o-0 \"q\\","state":{"n":0}}"#, "\(lines)")
    }

    @Test("projections warns about a handled type that never occurs in the log, suggesting the closest")
    func unknownTypeWarning() throws {
        let dir = try workspace(events: 2_010)  // both Placed and Added occur
        try "return { on = { Plaecd = function(s, e) end, Added = function(s, e) end, Refunded = function(s, e) end } }"
            .write(toFile: dir.path + "/projections/typo.lua", atomically: true, encoding: .utf8)
        let result = try audit(["projections"], in: dir.path)
        #expect(result.status == 0)
        #expect(result.stderr.contains(#"projection typo handles "Plaecd", which never occurs in the log (did you mean "Placed"?)"#))
        #expect(result.stderr.contains(#"projection typo handles "Refunded", which never occurs in the log"#))
        #expect(!result.stderr.contains(#"handles "Added""#))
        #expect(!result.stderr.contains("projection totals"))
    }

    @Test("replay, projections, state and query end to end; a bad projection exits 65 and the others still run")
    func endToEnd() throws {
        let dir = try workspace(events: 3_000)
        try "return { on = { Placed = function(s, e) error('nope') end } }"
            .write(toFile: dir.path + "/projections/broken.lua", atomically: true, encoding: .utf8)
        let replay = try audit(["replay"], in: dir.path)
        #expect(replay.status == 65)
        #expect(replay.stderr.contains("projection broken failed at seq 1") && replay.stderr.contains("broken.lua:1: nope"))
        #expect(replay.stdout.contains(#"{"projection":"totals","status":"rebuilt","position":3000,"events":3000}"#))
        let list = try audit(["projections", "--format", "csv"], in: dir.path).stdout
        // 3,001: totals' CodeBuilt event, which it does not handle, is passed over.
        #expect(list.range(of: #"totals,1,3001,0,\d+,ok"#, options: .regularExpression) != nil, "\(list)")
        #expect(list.contains(#"broken,1,0,3001,,"failed: projection broken failed at seq 1"#), "\(list)")
        let one = try audit(["state", "totals", "o-7", "--format", "json"], in: dir.path)
        #expect(one.stdout.contains(#"{"key":"o-7","state":{"n":2,"total":"#))
        let missing = try audit(["state", "totals", "nobody"], in: dir.path)
        #expect(missing.status == 65 && missing.stderr.contains(#"no state for key "nobody""#))
        try FileManager.default.createDirectory(atPath: dir.path + "/queries", withIntermediateDirectories: true)
        try "SELECT count(*) AS orders, sum(total) AS revenue FROM totals WHERE total >= :min"
            .write(toFile: dir.path + "/queries/revenue.sql", atomically: true, encoding: .utf8)
        let query = try audit(["query", "revenue", "--param", "min=0", "--format", "jsonl"], in: dir.path)
        #expect(query.stdout.hasPrefix(#"{"orders":2000,"revenue":"#))
        let bad = try audit(["query", "--sql", "SELECT nope FROM totals"], in: dir.path)
        #expect(bad.status == 65 && bad.stderr.contains("no such column: nope"))
        let write = try audit(["query", "--sql", "DELETE FROM totals"], in: dir.path)
        #expect(write.status == 65 && write.stderr.contains("not a query: it is a DELETE statement"), "\(write.stderr)")
        #expect(try audit(["query", "--sql", "SELECT count(*) AS n FROM totals", "--format", "csv"], in: dir.path).stdout == "n\n2000\n")
        #expect(try audit(["verify"], in: dir.path).stdout.contains(#""events":3001"#))
    }

    @Test("two projection files differing only in case: replay exits 65 naming both, and the other projections are built")
    func caseCollision() throws {
        let dir = try workspace(events: 3_000)
        try Self.projection.write(toFile: dir.path + "/projections/Totals.lua", atomically: true, encoding: .utf8)
        try Self.projection.write(toFile: dir.path + "/projections/zz_other.lua", atomically: true, encoding: .utf8)
        let replay = try audit(["replay"], in: dir.path)
        #expect(replay.status == 65)
        #expect(replay.stderr.contains("projections/Totals.lua and projections/totals.lua differ only in case"), "\(replay.stderr)")
        #expect(!replay.stderr.contains("SQLite error"))
        #expect(replay.stdout.contains(#"{"projection":"zz_other","status":"rebuilt","position":3000,"#), "\(replay.stdout)")
        #expect(replay.stdout.contains(#"{"projection":"Totals","status":"failed""#) && replay.stdout.contains(#"{"projection":"totals","status":"failed""#))
        // A name is looked up without case, as the table is.
        try FileManager.default.removeItem(atPath: dir.path + "/projections/Totals.lua")
        // It was never built, so the database holds only zz_other: totals is added.
        let one = try audit(["replay", "--add", "TOTALS"], in: dir.path)
        #expect(one.status == 0 && one.stdout.contains(#""projection":"totals","status":"rebuilt""#), "\(one.stderr)")
    }
}
