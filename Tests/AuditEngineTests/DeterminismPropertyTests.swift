import Foundation
import Testing

@testable import AuditEngine

/// The promise: a projection's result depends on its events alone. Random projections
/// built from the hazards (lists in pairs order, sorts with ties, integer keys, floats
/// near 2^53 and 1e16, deep and shared tables, writes to modules and upvalues) over
/// random logs, replayed every way a replay can go: --parallel 1 and 2, batch sizes,
/// interrupted and resumed, states dropped and read back, the log ingested in parts.
/// Every way must give byte-identical states, or the same failure at the same event.
@Suite("Determinism: the same states whatever the replay")
struct DeterminismPropertyTests {
    /// Fragments of a handler that a careless projection would get wrong before: each
    /// is deterministic now.
    static let hazards = [
        // a list built in pairs order
        """
        s.bag = s.bag or {}
        local slot = "k" .. (e.data.v % 7)
        s.bag[slot] = (s.bag[slot] or 0) + 1
        local names = {}
        for k, v in pairs(s.bag) do names[#names + 1] = k .. "=" .. v end
        s.bag_list = table.concat(names, ",")
        """,
        // a sort with ties, and a list kept as an array
        """
        s.items = s.items or {}
        table.insert(s.items, { k = e.data.v % 3, seq = e.seq })
        if #s.items > 12 then table.remove(s.items, 1) end
        local copy = {}
        for i, it in ipairs(s.items) do copy[i] = it end
        table.sort(copy, function(a, b) return a.k < b.k end)
        s.order = {}
        for i, it in ipairs(copy) do s.order[i] = it.seq end
        """,
        // floats near 2^53 and 1e16, as numbers and as text
        """
        s.f = (s.f or 0) + e.data.f
        s.g = s.f / 3
        s.text = tostring(s.f) .. "|" .. string.format("%.17g", s.g)
        s.big = 2^53 + e.data.v
        """,
        // deep tables
        """
        s.deep = { a = { b = { c = { d = { e.seq, e.data.v, { x = e.data.f } } } } } }
        """,
        // numbers as keys, as strings
        """
        s.byv = s.byv or {}
        s.byv[tostring(e.data.v % 5)] = e.seq
        """,
        // next() over the state
        """
        local n, k = 0, next(s)
        while k ~= nil do n = n + 1 k = next(s, k) end
        s.fields = n
        """,
        // reads of a module, an upvalue table and an upvalue
        """
        s.bucket = shared.bucket(e.data.v) .. config.sep .. label
        s.rate = (s.rate or 0) + config.rate * e.data.v
        """,
    ]

    /// Fragments that must fail the projection at the first event from the trigger on.
    /// Those that write hidden state read it back into s: were the write allowed, the
    /// state would depend on which keys a VM folded before (parallel, restarts).
    static let poisons = [
        "shared.tally.n = (shared.tally.n or 0) + 1 s.tally = shared.tally.n",   // a module's table
        "count = count + 1 s.count = count",                                      // an upvalue
        "cache.n = (cache.n or 0) + 1 s.cached = cache.n",                        // an upvalue table
        "rawset(_G, 'seen', (rawget(_G, 'seen') or 0) + 1) s.seen = rawget(_G, 'seen')",  // a global
        "s.ints = { [e.data.v + 2] = 1 }",                                        // integer keys outside 1..n
        "local t = { 1 } s.one = t s.two = { t }",                                // a table in two places
        "s.tmp = function() end",                                                 // a function, removed below
        "s.weak = setmetatable({}, { __index = function() return 0 end })",      // a metatable
    ]

    static let module = """
        local M = { tally = {} }
        function M.bucket(n) return "b" .. (n % 4) end
        return M
        """

    struct Scenario {
        var projection: String
        var events: [String]
        var summary: String
    }

    static func scenario(seed: UInt64) -> Scenario {
        var random = SplitMix64(seed: seed)
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let chosen = Array(Set((0..<(3 + pick(4))).map { _ in pick(hazards.count) })).sorted()
        let events = 150 + pick(150)
        let poison = pick(3) == 0 ? nil : pick(poisons.count)
        let trigger = 20 + pick(events - 40)
        var body = chosen.map { hazards[$0] }.joined(separator: "\n")
        if let poison {
            body += "\nif e.data.n >= \(trigger) then \(poisons[poison]) end"
            body += "\nif e.data.n == \(trigger + 5) then s.tmp = nil end"
        }
        let projection = """
            local shared = require "shared"
            local config = { rate = 0.25, sep = ":" }
            local cache = {}
            local count = 0
            local label = "L\(seed)"
            return {
              on = { T = function(s, e)
                local _ = cache, count
            \(body)
              end },
            }
            """
        let streams = 3 + pick(40)
        let anchors: [Double] = [0x1p53, 1e16, 0.1, 1e-5]
        let lines = (0..<events).map { n -> String in
            let anchor = anchors[pick(anchors.count)]
            let f = anchor + Double(pick(64)) * anchor.ulp * (pick(2) == 0 ? 1 : -1)
            return #"{"id":"e\#(n)","stream":"s\#(pick(streams))","type":"T","data":{"n":\#(n),"v":\#(pick(1000)),"f":\#(f)}}"#
        }
        let summary = "seed \(seed): hazards \(chosen), " + (poison.map { "poison \($0) at n = \(trigger)" } ?? "no poison")
        return Scenario(projection: projection, events: lines, summary: summary)
    }

    /// One way of replaying.
    struct Way: CustomStringConvertible {
        var parts = 1
        var parallel = 1
        var batch = 20_000
        var memory: Int?
        /// Seqs at which a replay stops early (then the next resumes from its checkpoint).
        var stops: [Int64] = []
        var description: String { "parts \(parts), parallel \(parallel), batch \(batch), memory \(memory.map(String.init) ?? "-"), stops \(stops)" }
    }

    /// The projection's states, or its failure as "failed at SEQ: MESSAGE", replayed
    /// `way`, and as a rebuild in one pass of the same log gives them. (Each way's log
    /// is its own: the builds' `CodeBuilt` events take seqs between the parts.)
    static func outcome(_ scenario: Scenario, _ way: Way) throws -> (result: [String], rebuilt: [String]) {
        let w = try Workspace()
        w.module("shared", module)
        w.projection("p", scenario.projection)
        let result = try w.replayInParts(
            "p", scenario.events, parts: way.parts, stops: way.stops, .batches(way.batch, parallel: way.parallel, memory: way.memory))
        var options = ReplayOptions()
        options.rebuild = true
        if case .failed(let error)? = try w.replay(["p"], options).first?.status {
            return (result, ["failed at \(error.seq.map(String.init) ?? "?"): " + withoutFolder(error.message)])
        }
        return (result, try w.dump("p"))
    }

    @Test("random projections full of hazards: byte-identical states every way they are replayed, or the same failure at the same event", arguments: 1...8)
    func property(seed: Int) throws {
        let scenario = Self.scenario(seed: UInt64(seed))
        var random = SplitMix64(seed: UInt64(seed) &* 977)
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let count = Int64(scenario.events.count)
        let ways = [
            Way(parallel: 2, batch: 1 + pick(40)),
            Way(parts: 2 + pick(3), parallel: 1 + pick(2), batch: 1 + pick(60)),
            Way(parallel: 1 + pick(2), batch: 2 + pick(20), memory: 1 << 20),
            Way(parts: 2, parallel: 2, batch: 3 + pick(30), stops: [1 + Int64(pick(Int(count) - 2)), 1 + Int64(pick(Int(count) - 2))].sorted()),
            Way(batch: 1),
        ]
        let reference = try Self.outcome(scenario, Way())
        #expect(!reference.result.isEmpty && reference.result == reference.rebuilt, "\(scenario.summary)")
        for way in ways {
            let (result, rebuilt) = try Self.outcome(scenario, way)
            #expect(result == rebuilt, "\(scenario.summary); \(way)\nexpected \(rebuilt.prefix(3))\ngot \(result.prefix(3))")
            // Whether it failed, and where in the scenario's events, is the same every way.
            #expect(result.count == reference.result.count && (result.first?.hasPrefix("failed at ") == reference.result.first?.hasPrefix("failed at ")))
        }
    }

    @Test("the generator does make what it tests: hazards that ran, poisons that failed their event")
    func generatorCoverage() throws {
        var failed = 0, passed = 0
        for seed in UInt64(1)...8 {
            let scenario = Self.scenario(seed: seed)
            let result = try Self.outcome(scenario, Way()).result
            if result.count == 1, result[0].hasPrefix("failed at ") {
                failed += 1
                #expect(!scenario.summary.hasSuffix("no poison"), "\(scenario.summary): \(result[0])")
            } else {
                passed += 1
                #expect(result.allSatisfy { $0.contains("{") })
            }
        }
        #expect(failed > 0 && passed > 0, "failed \(failed), passed \(passed)")
    }
}
