import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// Random logs where some events are poison (`"fail":true`): a projection with
/// `on_error = "park"` parks each key at its first poison event.
@Suite("on_error = \"park\": every key that never failed is as a clean replay leaves it")
struct ParkPropertyTests {
    /// Changes s in place, then fails on a poison event: parking must undo the change.
    static func script(failing: Bool, snapshotEvery: Int = 0, version: Int = 1) -> String {
        """
        return {
          version = \(version),
          on_error = "park",
          snapshot_every = \(snapshotEvery),
          on = {
            Add = function(s, e)
              s.n = (s.n or 0) + 1
              s.sum = (s.sum or 0) + e.data.v
              s.seqs = s.seqs or {}
              s.seqs[#s.seqs + 1] = e.seq
              \(failing ? #"if e.data.fail then error("poison at " .. e.seq) end"# : "")
            end,
          },
        }
        """
    }

    /// A random log: (stream, v, fail) per seq 1, 2, …, with occurred_at one second apart.
    static func log(seed: UInt64, count: Int, streams: Int, poison: Int) -> [(stream: String, v: Int, fail: Bool)] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let stream = "s-\(rng.next() % UInt64(streams))"
            return (stream, Int(rng.next() % 100), Int(rng.next() % 1000) < poison)
        }
    }

    static func lines(_ log: [(stream: String, v: Int, fail: Bool)]) -> [String] {
        log.enumerated().map { i, e in
            let time = String(format: "2024-01-01T%02d:%02d:%02dZ", i / 3600, i / 60 % 60, i % 60)
            return #"{"stream":"\#(e.stream)","type":"Add","occurred_at":"\#(time)","data":{"v":\#(e.v)\#(e.fail ? #","fail":true"# : "")}}"#
        }
    }

    /// The log's Add events as stored (the replays append their own CodeBuilt events
    /// between them): seq, stream, v, fail.
    static func stored(_ w: Workspace) throws -> [(seq: Int64, stream: String, v: Int, fail: Bool)] {
        try w.store.events(EventFilter(type: "Add")).map { e in
            let data = try JSONParser.parse(e.data)
            guard case .int(let v)? = data["v"] else { throw ProjectionError(projection: "test", message: "no v") }
            return (e.seq, e.stream, Int(v), data["fail"] != nil)
        }
    }

    /// What park must give, computed without the engine: each key's state folded up to
    /// its first poison event (none when that is its first event), the parked keys
    /// with their first seq, and their dead letters (seqs) — over the first `upTo` events.
    static func expected(_ log: [(seq: Int64, stream: String, v: Int, fail: Bool)], upTo: Int? = nil, failing: Bool = true)
        -> (states: [String], parked: [String: Int64], letters: [String: [Int64]])
    {
        var states: [String: (n: Int, sum: Int, seqs: [Int64])] = [:]
        var parked: [String: Int64] = [:]
        var letters: [String: [Int64]] = [:]
        for e in log.prefix(upTo ?? log.count) {
            if parked[e.stream] != nil {
                letters[e.stream, default: []].append(e.seq)
                continue
            }
            if failing, e.fail {
                parked[e.stream] = e.seq
                letters[e.stream] = [e.seq]
                continue
            }
            var s = states[e.stream] ?? (0, 0, [])
            s.n += 1
            s.sum += e.v
            s.seqs.append(e.seq)
            states[e.stream] = s
        }
        let lines = states.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { key in
            let s = states[key]!
            return #"\#(key) {"n":\#(s.n),"seqs":[\#(s.seqs.map(String.init).joined(separator: ","))],"sum":\#(s.sum)}"#
        }
        return (lines, parked, letters)
    }

    func parkedSet(_ w: Workspace, _ name: String = "p") throws -> [String: Int64] {
        Dictionary(try w.store.parkedKeys(projection: name).map { ($0.key, $0.firstSeq) }, uniquingKeysWith: min)
    }

    func deadLetters(_ w: Workspace, table: String = "p") throws -> [String: [Int64]] {
        try w.store.readTransaction { db in
            var result: [String: [Int64]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT key, seq FROM audit_dead_letters WHERE projection = ? ORDER BY seq", arguments: [table]) {
                result[row["key"], default: []].append(row["seq"])
            }
            return result
        }
    }

    static let cases: [(seed: UInt64, parallel: Int, batch: Int)] = [
        (1, 1, 7), (2, 2, 7), (3, 1, 1000), (4, 2, 13), (5, 2, 1000), (6, 1, 3),
    ]

    @Test("sequential and parallel, in batches with checkpoints, resumed part-way", arguments: cases)
    func parksExactly(seed: UInt64, parallel: Int, batch: Int) throws {
        let log = Self.log(seed: seed, count: 600, streams: 23, poison: 15)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true))
        // Ingested in three parts, replayed after each, stopping part-way too (a resumed
        // replay is a killed one's next start: the table is at its last checkpoint).
        let states = try w.replayInParts("p", Self.lines(log), parts: 3, stops: [50, 250, 333, 599], .batches(batch, parallel: parallel))
        let expected = Self.expected(try Self.stored(w))
        #expect(!expected.parked.isEmpty && expected.parked.count < 23, "the log should park some keys, not all")
        #expect(states == expected.states)
        #expect(try parkedSet(w) == expected.parked)
        #expect(try deadLetters(w) == expected.letters)
        let listed = try w.store.parkedKeys(projection: "p")
        for key in listed {
            #expect(key.deadLetters == expected.letters[key.key]?.count)
            #expect(key.error.contains(#"handler "Add""#) && key.error.contains("p.lua:") && key.error.contains("poison at \(key.firstSeq)"))
        }
    }

    @Test("the keys that never failed equal a clean script's replay; after the fix, the rebuild equals it whole")
    func cleanAndFixed() throws {
        let log = Self.log(seed: 9, count: 500, streams: 17, poison: 20)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true))
        try w.ingest(Self.lines(log))
        try w.replay(["p"], .batches(11, parallel: 2))
        let parked = try parkedSet(w)
        let clean = Self.expected(try Self.stored(w), failing: false).states
        let neverFailed = clean.filter { parked[String($0.prefix { $0 != " " })] == nil }
        #expect(try w.dump("p").filter { parked[String($0.prefix { $0 != " " })] == nil } == neverFailed)

        // verify --projections refolds aside with the same parked set: no difference.
        let check = try w.store.verifyProjections([try w.load("p")])
        #expect(check.first?.status == .ok, "\(String(describing: check.first?.reason))")

        w.projection("p", Self.script(failing: false, version: 2))
        let outcome = try w.replay(["p"], .batches(11, parallel: 2))
        #expect(outcome.first?.status == .rebuilt)
        #expect(try w.dump("p") == clean)
        #expect(try parkedSet(w).isEmpty)
        #expect(try deadLetters(w).isEmpty)
    }

    @Test("snapshots and --as-of: every fold from a snapshot honours the parked set")
    func snapshotsAndAsOf() throws {
        let log = Self.log(seed: 21, count: 400, streams: 11, poison: 12)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true, snapshotEvery: 40))
        try w.ingest(Self.lines(log))
        try w.replay(["p"], .batches(9))
        let projection = try w.load("p")
        let logged = try Self.stored(w)
        for upTo in [39, 40, 41, 160, 277, 399] {
            let time = try Timestamp(rfc3339: String(format: "2024-01-01T%02d:%02d:%02dZ", (upTo - 1) / 3600, (upTo - 1) / 60 % 60, (upTo - 1) % 60))
            for useSnapshots in [true, false] {
                var options = TemporalOptions()
                options.useSnapshots = useSnapshots
                var lines: [String] = []
                try w.store.forEachStateBytes(projection, at: TemporalSelection(asOf: time), options: options) { key, state in
                    lines.append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
                }
                // Keys parked after this point are not parked yet at it.
                #expect(lines == Self.expected(logged, upTo: upTo).states, "as of event \(upTo), snapshots \(useSnapshots)")
            }
        }
    }

    @Test("a retry under the same code keeps failing keys parked; with a raised budget it unparks them")
    func retry() throws {
        let w = try Workspace()
        w.projection(
            "p",
            """
            return {
              on_error = "park",
              limits = { instructions = 20000 },
              on = { Add = function(s, e)
                s.n = (s.n or 0) + 1
                local x = 0
                for i = 1, e.data.loop or 0 do x = x + 1 end
                s.x = (s.x or 0) + x
              end },
            }
            """)
        try w.ingest([
            #"{"stream":"a","type":"Add","data":{}}"#, #"{"stream":"b","type":"Add","data":{"loop":100000}}"#,
            #"{"stream":"b","type":"Add","data":{"loop":3}}"#, #"{"stream":"a","type":"Add","data":{}}"#,
        ])
        try w.replay(["p"])
        #expect(try parkedSet(w) == ["b": 2])
        #expect(try w.state("p", "b") == nil)
        let same = try w.store.retryParked(try w.load("p"))
        #expect(same.first?.parkedAgain?.firstSeq == 2)
        #expect(try parkedSet(w) == ["b": 2] && deadLetters(w) == ["b": [2, 3]])

        var options = ReplayOptions()
        options.limits = LuaLimits(memoryBytes: LuaLimits.default.memoryBytes, instructionsPerEvent: 10_000_000)
        let raised = try w.store.retryParked(try w.load("p"), keys: ["b"], options: options)
        #expect(raised == [RetryOutcome(key: "b", refolded: 2, parkedAgain: nil)])
        #expect(try w.state("p", "b") == #"{"n":2,"x":100003}"#)
        #expect(try w.state("p", "a") == #"{"n":2,"x":0}"#)
        #expect(try parkedSet(w).isEmpty && deadLetters(w).isEmpty)
        // Folding on afterwards neither skips nor refolds anything.
        try w.ingest([#"{"stream":"b","type":"Add","data":{}}"#])
        try w.replay(["p"])
        #expect(try w.state("p", "b") == #"{"n":3,"x":100003}"#)

        w.projection("p", "return { on_error = \"park\", on = { Add = function(s, e) end } }")
        #expect(throws: RetryNeedsRebuild.self) { try w.store.retryParked(try w.load("p")) }
    }

    @Test("a global projection can only stop; an unknown on_error names the file", arguments: [
        (#"key = "global", on_error = "park","#, "global projections can only stop"),
        (#"on_error = "skip","#, #"'on_error' must be "stop" or "park""#),
        ("on_error = 1,", #"'on_error' must be "stop" or "park""#),
    ])
    func refusedAtLoad(spec: String, message: String) throws {
        let w = try Workspace()
        w.projection("g", "return { \(spec) on = { Add = function(s, e) end } }")
        let error = try #require(throws: ProjectionError.self) { try w.load("g") }
        #expect(error.message.contains("g.lua") && error.message.contains(message), "\(error.message)")
    }

    @Test("on_error = \"stop\" (the default) still fails the projection at the first poison event")
    func stopStillStops() throws {
        let w = try Workspace()
        w.projection("p", Self.script(failing: true).replacingOccurrences(of: #"on_error = "park","#, with: ""))
        try w.ingest(Self.lines([("a", 1, false), ("b", 2, true), ("a", 3, false)]))
        let outcome = try w.replay(["p"]).first
        guard case .failed(let error)? = outcome?.status else { Issue.record("not failed: \(String(describing: outcome))"); return }
        #expect(error.seq == 2)
        #expect(try parkedSet(w).isEmpty)
    }

    @Test("a memory limit is machine-dependent: it stops a parking projection instead of parking")
    func memoryStops() throws {
        let w = try Workspace()
        w.projection(
            "p",
            """
            return { on_error = "park", limits = { memory_mb = 4 },
              on = { Add = function(s, e) if e.data.big then local t = {} for i = 1, 1e7 do t[i] = i end s.t = #t end end } }
            """)
        try w.ingest([#"{"stream":"a","type":"Add","data":{}}"#, #"{"stream":"b","type":"Add","data":{"big":true}}"#])
        let outcome = try w.replay(["p"]).first
        guard case .failed(let error)? = outcome?.status else { Issue.record("not failed: \(String(describing: outcome))"); return }
        #expect(!error.deterministic)
        #expect(try parkedSet(w).isEmpty)
    }
}
