import Foundation
import Testing

@testable import AuditEngine

@Suite("Partitioned parallel replay")
struct ParallelReplayTests {
    static let others = [
        ("by_customer", """
            return { key = function(e) return e.data.customer end,
                     on = { OrderPlaced = function(s, e) s.orders = (s.orders or 0) + 1 end } }
            """),
        ("totals", """
            return { key = "global", init = function() return { events = 0 } end,
                     on = { ItemAdded = function(s, e) s.events = s.events + 1 end } }
            """),
    ]

    /// Replays every projection over `log` (ingested in two parts, replaying after each)
    /// and returns all their states.
    func states(log: [String], parallel: Int, batch: Int, memory: Int? = nil, hold: Bool = false) throws -> [String] {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        for (name, source) in Self.others { w.projection(name, source) }
        var options = ReplayOptions()
        options.parallel = parallel
        options.batchSize = batch
        options.checkpointEvery = batch * 3
        if let memory { options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: memory, instructionsPerEvent: 1_000_000)) }
        options.holdCheckpoints = hold
        let names = ["order_totals", "by_customer", "totals"]
        let half = log.count / 2
        try w.ingest(Array(log[..<half]))
        let first = try w.replay(names, options)
        try w.ingest(Array(log[half...]))
        let outcomes = try w.replay(names, options)
        #expect(outcomes.allSatisfy { $0.status == .updated }, "\(outcomes)")
        if memory != nil {
            #expect((first + outcomes).contains { $0.timings.statesReadBack > 0 }, "states were dropped and read back")
        }
        return try names.flatMap { try w.dump($0) }
    }

    @Test(
        "any number of partitions gives byte-identical state to a sequential replay, over many random logs",
        arguments: [(1, 7), (2, 1), (3, 13), (8, 50), (64, 500)])
    func equivalence(parallel: Int, batch: Int) throws {
        for seed in UInt64(1)...6 {
            let log = orderLog(count: 600 + Int(seed) * 97, streams: 40 + Int(seed) * 31, seed: seed)
            let sequential = try states(log: log, parallel: 1, batch: 1_000)
            #expect(try states(log: log, parallel: parallel, batch: batch) == sequential, "seed \(seed)")
        }
    }

    @Test(
        "with states evicted and reloaded in every partition the result is the same, also when each checkpoint is still in flight while its states are read back",
        arguments: [(3, false), (1, true), (3, true)])
    func equivalenceUnderEviction(parallel: Int, hold: Bool) throws {
        let log = orderLog(count: 6_000, streams: 3_000, seed: 99)
        let sequential = try states(log: log, parallel: 1, batch: 1_000)
        #expect(try states(log: log, parallel: parallel, batch: 200, memory: 1 << 20, hold: hold) == sequential)
    }

    static let mergingTotals = """
        return {
          key = "global",
          init = function() return { events = 0, revenue = 0, biggest = 0, by_type = {} } end,
          on = {
            OrderPlaced = function(s, e)
              s.events = s.events + 1; s.revenue = s.revenue + e.data.amount
              if e.data.amount > s.biggest then s.biggest = e.data.amount end
              s.by_type.placed = (s.by_type.placed or 0) + 1
            end,
            ItemAdded = function(s, e)
              s.events = s.events + 1; s.revenue = s.revenue + e.data.qty * e.data.price
              s.by_type.added = (s.by_type.added or 0) + 1
            end,
          },
          merge = function(a, b)
            local by_type = {}
            for _, k in ipairs({ "placed", "added" }) do
              local n = (a.by_type[k] or 0) + (b.by_type[k] or 0)
              if n > 0 then by_type[k] = n end
            end
            return { events = a.events + b.events, revenue = a.revenue + b.revenue,
                     biggest = math.max(a.biggest, b.biggest), by_type = by_type }
          end,
        }
        """

    func mergedState(log: [String], parallel: Int, batch: Int) throws -> [String] {
        let w = try Workspace()
        w.projection("merged", Self.mergingTotals)
        var options = ReplayOptions()
        options.parallel = parallel
        options.batchSize = batch
        let half = log.count / 3
        try w.ingest(Array(log[..<half]))
        try w.replay(["merged"], options)
        try w.ingest(Array(log[half...]))
        #expect(try w.replay(["merged"], options).first?.status == .updated)
        return try w.dump("merged")
    }

    @Test(
        "a global projection with merge folds seq ranges in parallel, with the same result as sequential",
        arguments: [(2, 100), (3, 7), (8, 1_000)])
    func mergeEquivalence(parallel: Int, batch: Int) throws {
        for seed in UInt64(11)...14 {
            let log = orderLog(count: 900, streams: 120, seed: seed)
            let sequential = try mergedState(log: log, parallel: 1, batch: 1_000)
            #expect(sequential.count == 1)
            #expect(try mergedState(log: log, parallel: parallel, batch: batch) == sequential, "seed \(seed)")
        }
    }

    @Test("the timings count the states read back once a VM outgrew half its memory", arguments: [1, 2])
    func readBackCounted(parallel: Int) throws {
        let log = orderLog(count: 12_000, streams: 6_000, seed: 99)
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        try w.ingest(log)
        var options = ReplayOptions()
        options.parallel = parallel
        options.batchSize = 200
        options.checkpointEvery = 600
        let ample = try w.replay(["order_totals"], options)[0]
        #expect(ample.status == .rebuilt && ample.timings.statesReadBack == 0)
        options.rebuild = true
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 1_000_000))
        let tight = try w.replay(["order_totals"], options)[0]
        #expect(tight.status == .rebuilt)
        #expect(tight.timings.statesReadBack > 0 && tight.timings.readingBackStates > 0)
        #expect(tight.timings.summary.contains("of which reading \(tight.timings.statesReadBack) states back "))
        #expect(tight.timings.readingBackStates <= tight.timings.folding * Double(parallel))
    }

    @Test("merge is refused without key = global, and a failing merge stops the projection")
    func mergeErrors() throws {
        let w = try Workspace()
        w.projection("keyed", "return { on = { T = function(s, e) end }, merge = function(a, b) return a end }")
        #expect { try w.load("keyed") } throws: { "\($0)".contains("'merge' is used with key = \"global\" only") }
        w.projection("broken", #"return { key = "global", on = { T = function(s, e) s.n = 1 end }, merge = function(a, b) error("no merge") end }"#)
        try w.ingest((0..<50).map { _ in eventLine(stream: "k", type: "T") })
        var options = ReplayOptions()
        options.parallel = 2
        guard case .failed(let error)? = try w.replay(["broken"], options).first?.status else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.description.contains("merge failed") && error.description.contains("no merge"))
    }

    @Test("a failure in one partition stops the projection at its first failing seq; the others finish")
    func failureInAPartition() throws {
        let w = try Workspace()
        w.projection("fragile", "return { on = { T = function(s, e) if e.seq == 37 or e.seq == 80 then error('bad ' .. e.seq) end s.n = (s.n or 0) + 1 end } }")
        w.projection("steady", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<100).map { eventLine(stream: "k\($0 % 9)", type: "T") })
        var options = ReplayOptions()
        options.parallel = 4
        let outcomes = try w.replay(["fragile", "steady"], options)
        guard case .failed(let error) = outcomes[0].status else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.seq == 37 && error.description.contains("bad 37"))
        #expect(outcomes[1].status == .rebuilt)
        #expect(try w.dump("steady").count == 9)
    }
    @Test("a pass's last progress report comes after its last checkpoint and says where its time went", arguments: [1, 2])
    func timingsReported(parallel: Int) throws {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        try w.ingest(orderLog(count: 3_000, streams: 400, seed: 5))
        let reports = Reports()
        var options = ReplayOptions()
        options.parallel = parallel
        options.batchSize = 500
        options.progress = { reports.add($0) }
        let started = ContinuousClock.now
        let outcomes = try w.replay(["order_totals"], options)
        let elapsed = (ContinuousClock.now - started).seconds
        #expect(outcomes.map(\.status) == [.rebuilt])
        let all = reports.all
        let last = try #require(all.last)
        // One report per batch, then the last, with the same position.
        #expect(all.count >= 3)
        #expect(last.position == 3_000 && all[all.count - 2].position == 3_000)
        let t = last.timings
        #expect(t.folding > 0 && t.serializing > 0)
        #expect(t.lastCheckpoint > 0 && all[all.count - 2].timings.lastCheckpoint == 0)
        #expect([t.waitingForEvents, t.waitingForWriter].allSatisfy { $0 >= 0 })
        #expect(outcomes[0].timings == t)  // one pass
        let parts = t.folding + t.serializing + t.waitingForEvents + t.waitingForWriter + t.lastCheckpoint
        #expect(parts <= last.seconds && last.seconds <= elapsed)
    }
}

/// Progress reports collected from the replay's thread.
///
/// `@unchecked Sendable`: `reports` is touched only under `lock`.
private final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [ReplayProgress] = []

    func add(_ report: ReplayProgress) {
        lock.lock()
        reports.append(report)
        lock.unlock()
    }

    var all: [ReplayProgress] {
        lock.lock()
        defer { lock.unlock() }
        return reports
    }
}
