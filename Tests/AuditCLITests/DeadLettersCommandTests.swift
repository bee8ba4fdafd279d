import Foundation
import Testing

@Suite("Parked keys and dead letters from the command line")
struct DeadLettersCommandTests {
    /// Changes s in place, then fails on events marked bad.
    static let projection = """
        return {
          on_error = "park",
          limits = { instructions = 50000 },
          on = {
            Add = function(s, e)
              s.n = (s.n or 0) + 1
              s.total = (s.total or 0) + e.data.amount
              if e.data.bad then error("bad amount") end
              local x = 0
              for i = 1, e.data.loop or 0 do x = x + 1 end
            end,
          },
          columns = { total = "integer" },
        }
        """

    /// A workspace with `events` events over 2,000 streams; streams o-7 and o-11 get a
    /// bad event at their 3rd, and o-13 a long loop (the instruction budget) at its 2nd.
    /// With `snapshotEvery`, replay takes snapshots that often.
    func workspace(events: Int, snapshotEvery: Int? = nil) throws -> TempDir {
        let script = snapshotEvery.map { Self.projection.replacingOccurrences(of: "  on = {", with: "  snapshot_every = \($0),\n  on = {") }
        return try TempDir.workspace(projections: ["totals": script ?? Self.projection], events: Self.events(0..<events))
    }

    /// Events `range` of the workspace's log (see `workspace`).
    static func events(_ range: Range<Int>) -> [String] {
        range.map { i in
            let stream = i % 2000
            let round = i / 2000
            let bad = (stream == 7 || stream == 11) && round == 2 ? #","bad":true"# : ""
            let loop = stream == 13 && round == 1 ? #","loop":1000000"# : ""
            return #"{"stream":"o-\#(stream)","type":"Add","data":{"amount":\#(i % 97)\#(bad)\#(loop)}}"#
        }
    }

    @Test("replay parks the failing keys and exits 0; dead-letters lists them; state, query and projections say so")
    func listAndReads() throws {
        let dir = try workspace(events: 10_000)
        let replay = try audit(["replay", "--parallel", "2"], in: dir.path)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stderr.contains("key o-7 parked at seq 4008"))

        let list = try audit(["dead-letters", "--format", "csv"], in: dir.path)
        #expect(list.status == 0, "\(list.stderr)")
        let rows = list.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first == "projection,key,first_seq,dead_letters,error")
        #expect(rows.count == 4)
        #expect(rows[1].hasPrefix("totals,o-13,2014,4,"))
        // The budget names the handler and the line it stopped at, as a handler's error does.
        #expect(rows[1].contains(#"handler ""Add"""#) && rows[1].contains("totals.lua:10: instruction budget of 50000 instructions exceeded"), "\(rows[1])")
        #expect(rows[2].hasPrefix("totals,o-7,4008,3,") && rows[2].contains(#"handler ""Add"""#) && rows[2].contains("totals.lua:8: bad amount"))
        #expect(rows[3].hasPrefix("totals,o-11,4012,3,"))
        #expect(try audit(["dead-letters", "totals", "--format", "jsonl"], in: dir.path).stdout.split(separator: "\n").count == 3)
        #expect(try audit(["dead-letters", "nosuch"], in: dir.path).status == 65)
        // One key's dead letters: its events from the failed one on.
        let letters = try audit(["dead-letters", "totals", "o-7", "--format", "csv"], in: dir.path)
        #expect(letters.status == 0, "\(letters.stderr)")
        #expect(letters.stdout.split(separator: "\n").map { $0.split(separator: ",").prefix(2).joined(separator: ",") } == ["seq,type", "4008,Add", "6008,Add", "8008,Add"])
        let notParked = try audit(["dead-letters", "totals", "o-8"], in: dir.path)
        #expect(notParked.status == 65 && notParked.stderr.contains("projection totals: key o-8 is not parked"), "\(notParked.stderr)")

        // The parked key holds its state after its last good event (2 events), not the
        // in-place change its failing handler made.
        let state = try audit(["state", "totals", "o-7"], in: dir.path)
        #expect(state.status == 0)
        #expect(state.stdout == #"{"key":"o-7","state":{"n":2,"total":\#(7 % 97 + 2007 % 97)},"parked":{"first_seq":4008}}"# + "\n")
        #expect(state.stderr.contains("key o-7 of totals is parked since seq 4008"))
        let other = try audit(["state", "totals", "o-8"], in: dir.path)
        #expect(!other.stdout.contains("parked") && other.stdout.contains(#""n":5"#))

        let query = try audit(["query", "--sql", "SELECT count(*) FROM totals"], in: dir.path)
        #expect(query.status == 0 && query.stderr.contains("totals has 3 parked keys"), "\(query.stderr)")
        let projections = try audit(["projections"], in: dir.path)
        #expect(projections.status == 0)
        #expect(projections.stderr.contains("projection totals has 3 parked keys (first at seq 2014)"))
    }

    @Test("retry: under the same limits the key stays parked; with --instructions raised it is folded; after a code change it says to rebuild")
    func retry() throws {
        let dir = try workspace(events: 10_000)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let same = try audit(["dead-letters", "retry", "totals", "o-13"], in: dir.path)
        #expect(same.status == 0)
        #expect(same.stdout.contains(#""key":"o-13","refolded":0,"status":"parked","first_seq":2014"#))
        let raised = try audit(["dead-letters", "retry", "totals", "o-13", "--instructions", "100000000"], in: dir.path)
        #expect(raised.status == 0, "\(raised.stderr)")
        #expect(raised.stdout == #"{"key":"o-13","refolded":4,"status":"unparked"}"# + "\n")
        #expect(try audit(["state", "totals", "o-13"], in: dir.path).stdout.contains(#""n":5"#))
        #expect(try audit(["dead-letters", "retry", "totals", "o-13"], in: dir.path).status == 65)

        // Fixed code: retry refuses, replay rebuilds and folds the dead letters.
        try Self.projection.replacingOccurrences(of: #"if e.data.bad then error("bad amount") end"#, with: "")
            .write(toFile: dir.path + "/projections/totals.lua", atomically: true, encoding: .utf8)
        let refused = try audit(["dead-letters", "retry", "totals"], in: dir.path)
        #expect(refused.status == 1 && refused.stderr.contains("run `audit replay totals` to rebuild it"), "\(refused.stderr)")
        #expect(try audit(["replay"], in: dir.path).status == 0)
        #expect(try audit(["state", "totals", "o-7"], in: dir.path).stdout.contains(#""n":5"#))
        let after = try audit(["dead-letters"], in: dir.path)
        // o-13 fails again with the new code's budget: parked again.
        #expect(after.stdout.contains("o-13") && !after.stdout.contains("o-7"))
    }

    @Test("folds aside (a read-only catch-up, --as-of, verify --projections) park a key that fails in them, say so, and store nothing")
    func foldsAsidePark() throws {
        let dir = try workspace(events: 3000)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        // The rest of the log, after the replay's CodeBuilt event: o-7 fails at seq 4009, o-11 at 4013.
        let rest = dir.path + "/rest.jsonl"
        _ = FileManager.default.createFile(atPath: rest, contents: Data(Self.events(3000..<6000).joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", rest], in: dir.path).status == 0)
        let db = dir.path + "/audit.db"
        let stored = try sqlite("SELECT group_concat(key || ':' || first_seq) FROM audit_parked_keys", db)
        #expect(stored == "o-13:2014")
        let o7 = #""state":{"n":2,"total":\#(7 % 97 + 2007 % 97)}"#
        // The lag folded into a scratch database: o-7 fails there.
        let scratch = try audit(["--read-only", "state", "totals", "o-7"], in: dir.path)
        #expect(scratch.status == 0 && scratch.stdout.contains(o7), "\(scratch.stdout)\(scratch.stderr)")
        #expect(scratch.stderr.contains("key o-7 parked at seq 4009 in this answer"), "\(scratch.stderr)")
        // An --as-of answer is its own fold from seq 1: it parks all three, and marks them.
        let asOf = try audit(["state", "totals", "--as-of", "2999-01-01", "--format", "jsonl"], in: dir.path)
        #expect(asOf.status == 0 && asOf.stdout.contains(#"{"key":"o-7",\#(o7),"parked":{"first_seq":4009}}"#), "\(asOf.stdout)\(asOf.stderr)")
        for (key, seq) in [("o-13", 2014), ("o-7", 4009), ("o-11", 4013)] {
            #expect(asOf.stderr.contains("projection totals: key \(key) parked at seq \(seq) in this answer"), "\(asOf.stderr)")
        }
        // A series marks them at every point, in json and jsonl alike.
        for format in ["jsonl", "json"] {
            let series = try audit(["state", "totals", "--as-of-each", "year", "--from", "2998-01-01", "--to", "2999-12-31", "--format", format], in: dir.path)
            #expect(series.status == 0, "\(series.stderr)")
            for year in ["2998", "2999"] {
                let line = #"{"as_of":"\#(year)-12-31T23:59:59.999Z","key":"o-7",\#(o7),"parked":{"first_seq":4009}}"#
                #expect(series.stdout.contains(line), "\(series.stdout)")
            }
            #expect(series.stdout.components(separatedBy: #""parked":"#).count - 1 == 6, "o-7, o-11 and o-13 at both points: \(series.stdout)")
        }
        // A restatement between what was known before the rest arrived and now: o-7 and o-11,
        // whose states are the same, are changed (their new states are last good ones); o-13,
        // parked since seq 2014 in both, is not.
        let firstPart = try sqlite("SELECT recorded_at FROM events WHERE seq = 3000", db)
        let now = try sqlite("SELECT max(recorded_at) FROM events", db)
        let total7 = 7 % 97 + 2007 % 97, total11 = 11 % 97 + 2011 % 97
        for format in ["jsonl", "json"] {
            let restated = try audit(
                ["state", "totals", "--as-of", "2999-01-01", "--known-at", firstPart, "--compare-known-at", now, "--format", format], in: dir.path)
            #expect(restated.status == 0, "\(restated.stderr)")
            for (key, total, seq) in [("o-7", total7, 4009), ("o-11", total11, 4013)] {
                let state = #"{"n":2,"total":\#(total)}"#
                let line = #"{"change":"changed","key":"\#(key)","old":\#(state),"new":\#(state),"new_parked":{"first_seq":\#(seq)}}"#
                #expect(restated.stdout.contains(line), "\(restated.stdout)")
            }
            #expect(!restated.stdout.contains(#""key":"o-13""#), "\(restated.stdout)")
            #expect(!restated.stdout.contains("old_parked"), "\(restated.stdout)")
            // The other way round, the marks change sides.
            let back = try audit(
                ["state", "totals", "--as-of", "2999-01-01", "--known-at", now, "--compare-known-at", firstPart, "--format", format], in: dir.path)
            #expect(back.status == 0 && back.stdout.contains(#""key":"o-7","#) && back.stdout.contains(#""old_parked":{"first_seq":4009}}"#), "\(back.stdout)")
            #expect(!back.stdout.contains("new_parked"), "\(back.stdout)")
        }
        #expect(try sqlite("SELECT group_concat(key || ':' || first_seq) FROM audit_parked_keys", db) == stored)
        #expect(try sqlite("SELECT position FROM projections WHERE name = 'totals'", db) == "3001")

        #expect(try audit(["replay"], in: dir.path).status == 0)
        let verified = try audit(["verify", "--projections"], in: dir.path)
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
    }

    @Test("an --as-of answer from a snapshot that holds parked keys says so and marks them, as the fold from seq 1 does")
    func asOfFromParkedSnapshot() throws {
        let dir = try workspace(events: 6000, snapshotEvery: 1000)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let db = dir.path + "/audit.db"
        #expect(try sqlite("SELECT group_concat(key, ',') FROM (SELECT key FROM audit_snapshot_parked WHERE seq = 6000 ORDER BY key)", db) == "o-11,o-13,o-7")
        let fromSnapshot = try audit(["state", "totals", "--as-of", "2999-01-01", "--format", "jsonl"], in: dir.path)
        let fromSeq1 = try audit(["state", "totals", "--as-of", "2999-01-01", "--format", "jsonl", "--no-snapshots"], in: dir.path)
        #expect(fromSnapshot.status == 0 && fromSeq1.status == 0, "\(fromSnapshot.stderr)\(fromSeq1.stderr)")
        #expect(fromSnapshot.stdout == fromSeq1.stdout)
        for (key, seq) in [("o-13", 2014), ("o-7", 4008), ("o-11", 4012)] {
            #expect(fromSnapshot.stdout.contains(#"{"key":"\#(key)","#) && fromSnapshot.stdout.contains(#""parked":{"first_seq":\#(seq)}}"#))
            #expect(fromSnapshot.stderr.contains("\(key) since seq \(seq)"), "\(fromSnapshot.stderr)")
        }
        #expect(fromSnapshot.stderr.contains("projection totals: 3 parked keys ("), "\(fromSnapshot.stderr)")
        #expect(fromSnapshot.stderr.contains("answered from their last good states"), "\(fromSnapshot.stderr)")
    }

    @Test("kill -9 during a parking replay that takes snapshots, then replay again: the same states and dead letters as an uninterrupted one, and a rebuild from a snapshot gives them too")
    func killAndResume() throws {
        let clean = try workspace(events: 200_000, snapshotEvery: 30_000)
        #expect(try audit(["replay"], in: clean.path).status == 0)
        let expected = try audit(["state", "totals"], in: clean.path).stdout
        let letters = try sqlite("SELECT group_concat(key || ':' || seq) FROM (SELECT * FROM audit_dead_letters ORDER BY seq)", clean.path + "/audit.db")

        let dir = try workspace(events: 200_000, snapshotEvery: 30_000)
        let replay = try RunningCommand(["replay", "--checkpoint-every", "5000", "--batch-size", "1000", "--parallel", "2"], in: dir.path)
        let position = killOnceBuilt(replay, "totals", past: 20_000, in: dir)
        #expect(position > 0 && position < 200_000)

        let resumed = try audit(["replay"], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try audit(["state", "totals"], in: dir.path).stdout == expected)
        #expect(try sqlite("SELECT group_concat(key || ':' || seq) FROM (SELECT * FROM audit_dead_letters ORDER BY seq)", dir.path + "/audit.db") == letters)
        #expect(letters.split(separator: ",").count == 98 + 98 + 99)  // o-7 and o-11 from round 2 on, o-13 from round 1

        // The snapshots hold the keys parked at their seqs: a rebuild starts from one.
        #expect(try sqlite("SELECT count(DISTINCT seq) FROM audit_snapshot_parked", dir.path + "/audit.db") != "0")
        let rebuilt = try audit(["replay", "--rebuild"], in: dir.path)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(try audit(["state", "totals"], in: dir.path).stdout == expected)
        #expect(try sqlite("SELECT group_concat(key || ':' || seq) FROM (SELECT * FROM audit_dead_letters ORDER BY seq)", dir.path + "/audit.db") == letters)
    }
}
