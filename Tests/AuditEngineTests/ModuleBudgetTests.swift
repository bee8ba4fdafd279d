import Foundation
import Testing

@testable import AuditEngine

/// A lib module's top level runs once per VM, when it is first required. Which event that
/// is depends on the VM (the partition of --parallel, a catch-up's VM made mid-log), so
/// its cost must land on no event: it runs under a budget of its own.
@Suite("The top level of a lib module is charged to no event")
struct ModuleBudgetTests {
    /// A module whose top level costs about 600,000 instructions (two per loop turn).
    static let heavy = "local t = 0 for i = 1, 300000 do t = t + i end return { total = t }"

    /// Every event requires `heavy`; an event spins `e.data.n` instructions more. 600,000
    /// of them fit the default budget of 1,000,000 alone, not with heavy's top level.
    static let projection = """
        return {
          on_error = "park",
          on = {
            T = function(s, e)
              local heavy = require "heavy"
              for i = 1, e.data.n do end
              s.n = (s.n or 0) + 1
              s.total = heavy.total
            end,
          },
        }
        """

    /// Stream a first (cheap), then ten streams whose only event spins 600,000: in a VM
    /// without a's event, one of theirs is the first to require heavy.
    static let log: [String] =
        [eventLine(stream: "a", type: "T", data: #"{"n":0}"#)]
        + (0..<10).map { eventLine(stream: "s\($0)", type: "T", data: #"{"n":600000}"#) }

    struct Outcome: Equatable {
        var states: [String]
        var parked: [String]
    }

    func outcome(_ w: Workspace) throws -> Outcome {
        Outcome(states: try w.dump("p"), parked: try w.store.parkedKeys(projection: "p").map { "\($0.key)@\($0.firstSeq): \($0.error)" })
    }

    func workspace() throws -> Workspace {
        let w = try Workspace()
        w.projection("p", Self.projection)
        w.module("heavy", Self.heavy)
        return w
    }

    @Test("--parallel 2 gives the states and parked keys of --parallel 1 when partitioning changes which event first requires a module")
    func parallelMatchesSequential() throws {
        var outcomes: [Int: Outcome] = [:]
        for parallel in [1, 2, 3] {
            let w = try workspace()
            try w.ingest(Self.log)
            var options = ReplayOptions()
            options.parallel = parallel
            options.batchSize = 4
            let result = try w.replay(["p"], options)
            #expect(result.allSatisfy { $0.status == .rebuilt }, "parallel \(parallel): \(result.map(\.status))")
            outcomes[parallel] = try outcome(w)
        }
        #expect(outcomes[1]?.parked == [], "\(outcomes[1]!.parked)")
        #expect(outcomes[1]?.states.count == 11)
        #expect(outcomes[2] == outcomes[1], "\(outcomes[2]!.parked)")
        #expect(outcomes[3] == outcomes[1], "\(outcomes[3]!.parked)")
    }

    @Test("a catch-up from a checkpoint (a VM made mid-log) gives what a rebuild from seq 1 gives")
    func catchUpMatchesRebuild() throws {
        let caughtUp = try workspace()
        try caughtUp.ingest(Array(Self.log.prefix(1)))
        #expect(try caughtUp.replay(["p"])[0].status == .rebuilt)
        try caughtUp.ingest(Array(Self.log.dropFirst()))
        let update = try caughtUp.replay(["p"])[0]
        #expect(update.status == .updated, "\(update.status)")
        // Rebuilt from seq 1 in the same database: the CodeBuilt events are the same.
        var options = ReplayOptions()
        options.rebuild = true
        let before = try outcome(caughtUp)
        #expect(try caughtUp.replay(["p"], options)[0].status == .rebuilt)
        let rebuilt = try outcome(caughtUp)
        #expect(before.parked == [], "\(before.parked)")
        #expect(before == rebuilt)
        #expect(rebuilt.states.count == 11)
    }

    @Test("an event's own count goes on exactly where the module's top level interrupted it: events near the budget fail alike in any VM")
    func eventCountIsExact() throws {
        let w = try Workspace()
        // The module costs 50 times the per-event budget; the handler requires it first,
        // then spins just under or just over the budget.
        w.module("heavy", "local t = 0 for i = 1, 250000 do t = t + i end return { total = t }")
        w.projection("p", "return { on = { T = function(s, e) local h = require 'heavy' for i = 1, e.data.n do end s.n = e.data.n end } }")
        let costs = (0..<120).map { 8_700 + ($0 * 7_919) % 2_600 }
        try w.ingest(costs.enumerated().map { eventLine(stream: "s\($0.offset % 7)", type: "T", data: #"{"n":\#($0.element)}"#) })
        let failures = try LimitsTests.failedSeqsUnderEveryPartitioning(
            w, saying: "instruction budget of 10000 instructions exceeded (an endless loop?)")
        #expect(failures.count == 1, "failed at seqs \(failures)")
        // The first event that spins more than the budget is the one that fails.
        #expect(failures.first.flatMap { $0 }.map { costs[Int($0) - 1] > 9_000 } == true, "\(failures)")
    }

    @Test("instructions an event ran before its first require still count: an event near its budget fails alike whether its VM had the module or not")
    func countBeforeRequireKept() throws {
        // Each B event spins 600 instructions, requires heavy, then spins `post`: in all,
        // from under to over the budget of 10,000 (checked every 1,000 instructions).
        let source = """
            return { on_error = "park", limits = { instructions = 10000 }, on = { T = function(s, e)
              for i = 1, e.data.pre do end
              local h = require "heavy"
              for i = 1, e.data.post do end
              s.n = 1
            end } }
            """
        let first = eventLine(stream: "a", type: "T", data: #"{"pre":0,"post":0}"#)
        let near = (0..<16).map { eventLine(stream: "b\($0)", type: "T", data: #"{"pre":600,"post":\#(9_300 + $0 * 100)}"#) }
        func workspace() throws -> Workspace {
            let w = try Workspace()
            w.projection("p", source)
            w.module("heavy", "local t = 0 for i = 1, 250000 do t = t + i end return { total = t }")
            return w
        }
        // Folded in one VM, where only a's event runs heavy's top level…
        let together = try workspace()
        try together.ingest([first] + near)
        #expect(try together.replay(["p"])[0].status == .rebuilt)
        // … and each B event caught up on its own, in a VM where it is the first to require heavy.
        let apart = try workspace()
        try apart.ingest([first])
        #expect(try apart.replay(["p"])[0].status == .rebuilt)
        for line in near {
            try apart.ingest([line])
            #expect(try apart.replay(["p"])[0].status == .updated)
        }
        let parkedTogether = try together.store.parkedKeys(projection: "p").map(\.key)
        let parkedApart = try apart.store.parkedKeys(projection: "p").map(\.key)
        #expect(!parkedTogether.isEmpty && parkedTogether.count < near.count, "\(parkedTogether)")
        #expect(parkedApart == parkedTogether)
        #expect(try apart.dump("p") == together.dump("p"))
    }

    @Test("a module's top level leaves the event's next() traversal as it was: what next(t, k) costs after a require does not depend on the VM")
    func nextTraversalKept() throws {
        // next(t, k) sorts t's keys once per traversal (charged as pairs); the module's
        // top level runs a traversal of its own. Were it to replace the event's, the
        // event's second next(t, k) would sort again, only in a VM where it ran heavy.
        let source = """
            return { on_error = "park", limits = { instructions = 100000 }, on = {
              Fill = function(s, e) s.t = {} for i = 1, e.data.n do s.t["k" .. i] = i end end,
              Walk = function(s, e)
                local k = next(s.t)
                k = next(s.t, k)
                local m = require "walker"
                k = next(s.t, k)
                s.walked = m.n
              end,
            } }
            """
        let first = [eventLine(stream: "a", type: "Fill", data: #"{"n":2}"#), eventLine(stream: "a", type: "Walk", data: "{}")]
        let walks = (0..<7).map { i in
            [eventLine(stream: "b\(i)", type: "Fill", data: #"{"n":\#(3_000 + i * 500)}"#), eventLine(stream: "b\(i)", type: "Walk", data: "{}")]
        }
        func workspace() throws -> Workspace {
            let w = try Workspace()
            w.projection("p", source)
            w.module("walker", "local u = { x = 1, y = 2, z = 3 } local n = 0 local k = next(u) while k do n = n + 1 k = next(u, k) end return { n = n }")
            return w
        }
        let together = try workspace()
        try together.ingest(first + walks.flatMap { $0 })
        #expect(try together.replay(["p"])[0].status == .rebuilt)
        let apart = try workspace()
        try apart.ingest(first)
        #expect(try apart.replay(["p"])[0].status == .rebuilt)
        for pair in walks {
            try apart.ingest(pair)
            #expect(try apart.replay(["p"])[0].status == .updated)
        }
        let parked = try apart.store.parkedKeys(projection: "p")
        #expect(parked.map(\.key) == [], "\(parked.map(\.error))")
        #expect(try together.store.parkedKeys(projection: "p").map(\.key) == [])
        #expect(try apart.dump("p") == together.dump("p"))
    }

    @Test("each module's top level has a budget of its own, also one required by another module's top level or by the script's")
    func budgetPerModule() throws {
        let w = try Workspace()
        // Each costs about 600,000: together more than any one budget of 1,000,000.
        w.module("inner", "local t = 0 for i = 1, 300000 do t = t + i end return { total = t }")
        w.module("outer", "local inner = require 'inner' local t = 0 for i = 1, 300000 do t = t + i end return { total = t + inner.total }")
        w.module("third", "local t = 0 for i = 1, 300000 do t = t + i end return { total = t }")
        w.projection(
            "p",
            """
            local third = require "third"
            for i = 1, 600000 do end
            return { on = { T = function(s, e) s.total = require("outer").total + third.total end } }
            """)
        try w.ingest([eventLine(stream: "a", type: "T", data: "{}")])
        let outcome = try w.replay(["p"])[0]
        #expect(outcome.status == .rebuilt, "\(outcome.status)")
        #expect(try w.state("p", "a") == #"{"total":135000450000}"#)
    }

    @Test("a module whose top level runs past its budget fails naming the module, its file and line, and the budget it ran under")
    func moduleOverItsBudget() throws {
        let endless = "local M = {}\nwhile true do end\nreturn M"
        // Required by a handler: every key whose event requires it is parked, alike in any VM.
        let w = try Workspace()
        w.module("endless", endless)
        w.projection("p", #"return { on_error = "park", on = { T = function(s, e) if e.data.go then require "endless" end s.n = 1 end } }"#)
        try w.ingest([
            eventLine(stream: "a", type: "T", data: #"{"go":true}"#), eventLine(stream: "b", type: "T", data: "{}"),
            eventLine(stream: "c", type: "T", data: #"{"go":true}"#),
        ])
        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 64 << 20, instructionsPerEvent: 20_000))
        #expect(try w.store.replay([try w.load("p")], options: options)[0].status == .rebuilt)
        let parked = try w.store.parkedKeys(projection: "p")
        #expect(parked.map(\.key) == ["a", "c"])
        let expected =
            #"lib/endless.lua:2: instruction budget of 1000000 instructions exceeded by the top level of module "endless" (a module's top level runs once per VM, when it is first required, under a budget of its own: the larger of the per-event budget and 1000000 instructions, never the event's)"#
        for key in parked { #expect(key.error.contains(expected) && key.error.contains(#"handler "T""#), "\(key.error)") }
        #expect(try w.state("p", "b") == #"{"n":1}"#)

        // Required when the script loads: the projection does not load, with the same words.
        let u = try Workspace()
        u.module("endless", endless)
        u.projection("q", #"local e = require "endless" return { on = { T = function(s, e) end } }"#)
        #expect {
            try u.load("q")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}
