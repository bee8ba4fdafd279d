import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// Random logs where some events are poison (`"fail":true`, or `"picky":true` when the
/// key's count reaches a multiple of 3, which depends on the events before it): a
/// projection with `on_error = "park"` parks each key at its first failing event.
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
              \(failing ? #"if e.data.picky and s.n % 3 == 0 then error("picky at " .. e.seq) end"# : "")
            end,
          },
        }
        """
    }

    /// One event of a random log: its stream, value, whether it is poison or picky, and
    /// when it occurred (seconds after 2024-01-01T00:00:00Z).
    struct Generated {
        var stream: String
        var v: Int
        var fail: Bool
        var picky = false
        var second = 0
    }

    /// A random log, per seq 1, 2, …, with occurred_at one second apart; with `late`,
    /// that share (per mille) of the events occurred up to a minute later (an --as-of
    /// selection is then no prefix of the log, and a key's state at an event depends on
    /// the time asked about), and `picky` per mille are picky.
    static func log(seed: UInt64, count: Int, streams: Int, poison: Int, picky: Int = 0, late: Int = 0) -> [Generated] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let stream = "s-\(rng.next() % UInt64(streams))"
            var e = Generated(stream: stream, v: Int(rng.next() % 100), fail: Int(rng.next() % 1000) < poison)
            e.picky = Int(rng.next() % 1000) < picky
            e.second = Int(rng.next() % 1000) < late ? i + 1 + Int(rng.next() % 60) : i
            return e
        }
    }

    static func time(_ second: Int) -> String {
        String(format: "2024-01-01T%02d:%02d:%02dZ", second / 3600, second / 60 % 60, second % 60)
    }

    static func lines(_ log: [Generated]) -> [String] {
        log.map { e in
            let flags = (e.fail ? #","fail":true"# : "") + (e.picky ? #","picky":true"# : "")
            return #"{"stream":"\#(e.stream)","type":"Add","occurred_at":"\#(time(e.second))","data":{"v":\#(e.v)\#(flags)}}"#
        }
    }

    /// An event of the log as stored (the replays append their own CodeBuilt events
    /// between them).
    struct Logged {
        var seq: Int64
        var stream: String
        var v: Int
        var fail: Bool
        var picky: Bool
        var occurredAt: String
    }

    static func stored(_ w: Workspace) throws -> [Logged] {
        try w.store.events(EventFilter(type: "Add")).map { e in
            let data = try JSONParser.parse(e.data)
            guard case .int(let v)? = data["v"] else { throw ProjectionError(projection: "test", message: "no v") }
            return Logged(seq: e.seq, stream: e.stream, v: Int(v), fail: data["fail"] != nil, picky: data["picky"] != nil, occurredAt: e.occurredAt.description)
        }
    }

    /// What park must give, computed without the engine: each key's state folded up to
    /// its first failing event (none when that is its first event), the parked keys
    /// with their first seq, and their dead letters (seqs) — over the first `upTo`
    /// events, and of those only the ones that occurred at or before `asOf`.
    static func expected(_ log: [Logged], upTo: Int? = nil, asOf: String? = nil, failing: Bool = true)
        -> (states: [String], parked: [String: Int64], letters: [String: [Int64]])
    {
        var states: [String: (n: Int, sum: Int, seqs: [Int64])] = [:]
        var parked: [String: Int64] = [:]
        var letters: [String: [Int64]] = [:]
        for e in log.prefix(upTo ?? log.count) where asOf.map({ e.occurredAt <= $0 }) ?? true {
            if parked[e.stream] != nil {
                letters[e.stream, default: []].append(e.seq)
                continue
            }
            let n = (states[e.stream]?.n ?? 0) + 1
            if failing, e.fail || (e.picky && n % 3 == 0) {
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

    /// The parked keys as "key first_seq error" lines, by key.
    func parkedLines(_ w: Workspace) throws -> [String] {
        try w.store.parkedKeys(projection: "p").map { "\($0.key) \($0.firstSeq) \($0.error)" }.sorted()
    }

    @Test("sequential and parallel, in batches with checkpoints and snapshots, resumed part-way (as after kill -9): park is exact, and a rebuild from a snapshot equals one from seq 1",
          arguments: cases)
    func parksExactly(seed: UInt64, parallel: Int, batch: Int) throws {
        let log = Self.log(seed: seed + 40, count: 600, streams: 23, poison: 10, picky: 80)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true, snapshotEvery: 37))
        // Snapshots are taken as the replays go, between and at their checkpoints, and
        // each replay resumes where the last checkpoint left the table (as after kill -9).
        let states = try w.replayInParts("p", Self.lines(log), parts: 3, stops: [50, 250, 333, 599], .batches(batch, parallel: parallel))
        let logged = try Self.stored(w)
        let expected = Self.expected(logged)
        #expect(!expected.parked.isEmpty && expected.parked.count < 23, "the log should park some keys, not all")
        #expect(states == expected.states)
        #expect(try parkedSet(w) == expected.parked)
        #expect(try deadLetters(w) == expected.letters)
        for key in try w.store.parkedKeys(projection: "p") {
            #expect(key.deadLetters == expected.letters[key.key]?.count)
            #expect(key.error.contains(#"handler "Add""#) && key.error.contains("p.lua:"), "\(key.error)")
            #expect(key.error.contains("poison at \(key.firstSeq)") || key.error.contains("picky at \(key.firstSeq)"), "\(key.error)")
        }
        let errors = try parkedLines(w)

        // The newest snapshot has keys parked at its seq: a rebuild starts from it.
        let newest = try #require(try w.store.snapshots().last)
        #expect(expected.parked.contains { $0.value <= newest.seq }, "a key should be parked before the newest snapshot (\(newest.seq))")
        var rebuild = ReplayOptions.batches(batch, parallel: parallel)
        rebuild.rebuild = true
        let starts = Steps()  // where each pass of the rebuild started
        rebuild.progress = { starts.add(String($0.start)) }
        #expect(try w.replay(["p"], rebuild).first?.status == .rebuilt)
        #expect(starts.all.compactMap { Int64($0) }.min() == newest.seq, "it started from the newest snapshot")
        #expect(try w.dump("p") == expected.states)
        #expect(try parkedSet(w) == expected.parked)
        #expect(try deadLetters(w) == expected.letters)
        #expect(try parkedLines(w) == errors)

        rebuild.useSnapshots = false
        rebuild.progress = nil
        #expect(try w.replay(["p"], rebuild).first?.status == .rebuilt)
        #expect(try w.dump("p") == expected.states)
        #expect(try parkedSet(w) == expected.parked)
        #expect(try deadLetters(w) == expected.letters)
        #expect(try parkedLines(w) == errors)

        // verify --projections, from seq 1 and from a snapshot, parks as the rebuilds did.
        var check = ProjectionCheckOptions()
        check.parallel = parallel
        for fromSnapshots in [false, true] {
            check.fromSnapshots = fromSnapshots
            let verified = try w.store.verifyProjections([try w.load("p")], options: check)
            #expect(verified.first?.status == .ok, "from snapshots \(fromSnapshots): \(verified)")
        }
        // A parked key that the table lost is a difference, named.
        let lost = try #require(expected.parked.max { $0.value < $1.value })
        try w.store.writeTransaction { db in
            try db.execute(sql: "DELETE FROM audit_parked_keys WHERE projection = 'p' AND key = ?", arguments: [lost.key])
        }
        let differs = try #require(try w.store.verifyProjections([try w.load("p")], options: check).first)
        #expect(differs.status == .differs && differs.reason?.contains("key \(lost.key) is parked by the rebuild at seq \(lost.value)") == true, "\(differs)")
    }

    @Test("--as-of and series from snapshots equal folds from seq 1 of exactly the selected events; a fold parks the keys that fail in it",
          arguments: [(UInt64(31), 1), (32, 2), (33, 1)])
    func asOfFromSnapshots(seed: UInt64, parallel: Int) throws {
        let log = Self.log(seed: seed, count: 500, streams: 11, poison: 2, picky: 100, late: 300)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true, snapshotEvery: 29))
        try w.ingest(Self.lines(Array(log.prefix(250))))
        try w.replay(["p"], .batches(17, parallel: parallel))
        try w.ingest(Self.lines(Array(log.dropFirst(250))))
        try w.replay(["p"], .batches(17, parallel: parallel))
        let snapshotParked = try w.store.readTransaction { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_snapshot_parked") ?? 0 }
        #expect(snapshotParked > 0, "the snapshots should hold parked keys")
        let projection = try w.load("p")
        let logged = try Self.stored(w)
        let live = try parkedSet(w)
        let points = try stride(from: 15, to: 500, by: 20).map { try Timestamp(rfc3339: Self.time($0)) }
        var parkedOnlyThere = 0
        var options = TemporalOptions()
        options.parallel = parallel
        for useSnapshots in [true, false] {
            options.useSnapshots = useSnapshots
            // One point at a time, and all of them as one series (one pass, late events folded again).
            var series: [Int: [String]] = [:]
            try w.store.forEachStateBytes(projection, at: points.map { TemporalSelection(asOf: $0) }, options: options) { point, key, state in
                series[point, default: []].append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
            }
            for (index, point) in points.enumerated() {
                let model = Self.expected(logged, asOf: point.description)
                var lines: [String] = []
                try w.store.forEachStateBytes(projection, at: TemporalSelection(asOf: point), options: options) { key, state in
                    lines.append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
                }
                #expect(lines == model.states, "as of \(point), snapshots \(useSnapshots)")
                #expect((series[index] ?? []) == model.states, "series point \(point), snapshots \(useSnapshots)")
                parkedOnlyThere += model.parked.filter { live[$0.key] != $0.value }.count
            }
        }
        #expect(parkedOnlyThere > 0, "some folds should park keys where the live table does not")
        // Nothing of those folds was stored.
        #expect(try parkedSet(w) == live)
    }

    @Test("a database from before parked sets (v11) is read as it is, its snapshots passed over; init upgrades it, and new snapshots are used")
    func olderDatabase() throws {
        let log = Self.log(seed: 51, count: 300, streams: 9, poison: 20, late: 200)
        let w = try Workspace()
        w.projection("p", Self.script(failing: true, snapshotEvery: 23))
        try w.ingest(Self.lines(log))
        try w.replay(["p"], .batches(10))
        let logged = try Self.stored(w)
        let expected = Self.expected(logged)
        #expect(!expected.parked.isEmpty)
        // As a v11 build left it: the snapshots without parked sets.
        let queue = try DatabaseQueue(path: w.store.path)
        try queue.write { db in
            for table in ["audit_snapshot_parked_sets", "audit_snapshot_parked", "audit_snapshot_dead_letters"] {
                try db.execute(sql: "DROP TABLE \(table)")
            }
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v12-snapshot-parked-sets'")
        }
        #expect(throws: StoreError.schemaTooOld(path: w.store.path)) { try EventStore(path: w.store.path) }
        let old = try EventStore(path: w.store.path, access: .readOnly)
        #expect(!(try old.snapshots().isEmpty))
        let asOf = try Timestamp(rfc3339: Self.time(200))
        var lines: [String] = []
        try old.forEachStateBytes(try w.load("p"), at: TemporalSelection(asOf: asOf)) { key, state in
            lines.append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
        }
        #expect(lines == Self.expected(logged, asOf: asOf.description).states)

        #expect(try EventStore.upgrade(path: w.store.path).applied == ["v12-snapshot-parked-sets"])
        let store = try EventStore(path: w.store.path)
        let starts = Steps()
        var rebuild = ReplayOptions.batches(10)
        rebuild.rebuild = true
        rebuild.progress = { starts.add(String($0.start)) }
        _ = try store.replay([try w.load("p")], options: rebuild)
        #expect(starts.all.first == "0", "the snapshots before the upgrade are not used")
        let again = Steps()
        rebuild.progress = { again.add(String($0.start)) }
        _ = try store.replay([try w.load("p")], options: rebuild)
        #expect(again.all.first != "0", "the snapshots taken since are")
        #expect(try w.dump("p") == expected.states && parkedSet(w) == expected.parked && deadLetters(w) == expected.letters)
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
              snapshot_every = 1,
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
        // The budget parked it, at the loop's line of the handler.
        let error = try #require(try w.store.parkedKeys(projection: "p").first?.error)
        #expect(error.contains(#"handler "Add""#) && error.contains("p.lua:8: instruction budget of 20000 instructions exceeded"), "\(error)")
        #expect(try w.store.snapshots().contains { $0.seq >= 2 }, "snapshots hold b parked")
        let same = try w.store.retryParked(try w.load("p"))
        #expect(same.first?.parkedAgain?.firstSeq == 2)
        #expect(try parkedSet(w) == ["b": 2] && deadLetters(w) == ["b": [2, 3]])

        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: LuaLimits.default.memoryBytes, instructionsPerEvent: 10_000_000))
        let raised = try w.store.retryParked(try w.load("p"), keys: ["b"], options: options)
        #expect(raised == [RetryOutcome(key: "b", refolded: 2, parkedAgain: nil)])
        #expect(try w.state("p", "b") == #"{"n":2,"x":100003}"#)
        #expect(try w.state("p", "a") == #"{"n":2,"x":0}"#)
        #expect(try parkedSet(w).isEmpty && deadLetters(w).isEmpty)
        // The snapshots that held b parked are gone: the next one compares the table.
        #expect(try w.store.snapshots().allSatisfy { $0.seq < 2 })
        // Folding on afterwards neither skips nor refolds anything.
        try w.ingest([#"{"stream":"b","type":"Add","data":{}}"#])
        try w.replay(["p"])
        #expect(try w.state("p", "b") == #"{"n":3,"x":100003}"#)
        var check = ProjectionCheckOptions()
        check.fromSnapshots = true
        check.limits = options.limits
        let verified = try w.store.verifyProjections([try w.load("p")], options: check)
        #expect(verified.first?.status == .ok && verified.first?.fromSnapshot != nil, "\(verified)")

        w.projection("p", "return { on_error = \"park\", on = { Add = function(s, e) end } }")
        #expect(throws: RetryNeedsRebuild.self) { try w.store.retryParked(try w.load("p")) }
    }

    @Test("a key parked by a deterministic budget names the handler and the file:line it stopped at", arguments: [
        ("for i = 1, 1e9 do end", 20_000, "instruction budget of 20000 instructions exceeded (an endless loop?)"),
        (#"local x = string.rep("x", 1000000)"#, 20_000, "instruction budget of 20000 instructions exceeded in string.rep"),
        (#"local x = string.find(string.rep("a", 3000), "a*a*a*a*b")"#, 20_000, "instruction budget of 20000 instructions exceeded in string.find"),
        (#"local t = "x" for i = 1, 30 do t = t .. t end"#, 100_000_000, "string size limit of 16 MB exceeded"),
    ])
    func budgetNamesTheLine(body: String, instructions: Int, message: String) throws {
        let w = try Workspace()
        w.projection("p", """
            return {
              on_error = "park",
              limits = { instructions = \(instructions) },
              on = { Add = function(s, e) s.n = (s.n or 0) + 1
                if e.data.fail then \(body) end
              end },
            }
            """)
        try w.ingest(Self.lines([Generated(stream: "a", v: 1, fail: false), Generated(stream: "b", v: 2, fail: true)]))
        try w.replay(["p"])
        let parked = try #require(try w.store.parkedKeys(projection: "p").first)
        #expect(parked.key == "b" && parked.firstSeq == 2)
        #expect(parked.error.contains(#"handler "Add""#) && parked.error.contains("p.lua:5: " + message), "\(parked.error)")
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
        try w.ingest(Self.lines([Generated(stream: "a", v: 1, fail: false), Generated(stream: "b", v: 2, fail: true), Generated(stream: "a", v: 3, fail: false)]))
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
