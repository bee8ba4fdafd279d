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
    func workspace(events: Int) throws -> TempDir {
        try TempDir.workspace(projections: ["totals": Self.projection], events: (0..<events).map { i in
            let stream = i % 2000
            let round = i / 2000
            let bad = (stream == 7 || stream == 11) && round == 2 ? #","bad":true"# : ""
            let loop = stream == 13 && round == 1 ? #","loop":1000000"# : ""
            return #"{"stream":"o-\#(stream)","type":"Add","data":{"amount":\#(i % 97)\#(bad)\#(loop)}}"#
        })
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
        #expect(rows[1].contains("instruction budget"))
        #expect(rows[2].hasPrefix("totals,o-7,4008,3,") && rows[2].contains(#"handler ""Add"""#) && rows[2].contains("totals.lua:8: bad amount"))
        #expect(rows[3].hasPrefix("totals,o-11,4012,3,"))
        #expect(try audit(["dead-letters", "totals", "--format", "jsonl"], in: dir.path).stdout.split(separator: "\n").count == 3)
        #expect(try audit(["dead-letters", "nosuch"], in: dir.path).status == 65)

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

    @Test("kill -9 during a parking replay, then replay again: the same states and dead letters as an uninterrupted one")
    func killAndResume() throws {
        let clean = try workspace(events: 200_000)
        #expect(try audit(["replay"], in: clean.path).status == 0)
        let expected = try audit(["state", "totals"], in: clean.path).stdout
        let letters = try sqlite("SELECT group_concat(key || ':' || seq) FROM (SELECT * FROM audit_dead_letters ORDER BY seq)", clean.path + "/audit.db")

        let dir = try workspace(events: 200_000)
        let replay = try RunningCommand(["replay", "--checkpoint-every", "5000", "--batch-size", "1000", "--parallel", "2"], in: dir.path)
        let position = killOnceBuilt(replay, "totals", past: 20_000, in: dir)
        #expect(position > 0 && position < 200_000)

        let resumed = try audit(["replay"], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try audit(["state", "totals"], in: dir.path).stdout == expected)
        #expect(try sqlite("SELECT group_concat(key || ':' || seq) FROM (SELECT * FROM audit_dead_letters ORDER BY seq)", dir.path + "/audit.db") == letters)
        #expect(letters.split(separator: ",").count == 98 + 98 + 99)  // o-7 and o-11 from round 2 on, o-13 from round 1
    }
}
