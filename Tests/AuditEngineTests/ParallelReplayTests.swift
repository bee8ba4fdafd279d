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
    func states(log: [String], parallel: Int, batch: Int, memory: Int? = nil) throws -> [String] {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        for (name, source) in Self.others { w.projection(name, source) }
        var options = ReplayOptions()
        options.parallel = parallel
        options.batchSize = batch
        options.checkpointEvery = batch * 3
        if let memory { options.limits = LuaLimits(memoryBytes: memory, instructionsPerEvent: 1_000_000) }
        let names = ["order_totals", "by_customer", "totals"]
        let half = log.count / 2
        try w.ingest(Array(log[..<half]))
        try w.replay(names, options)
        try w.ingest(Array(log[half...]))
        let outcomes = try w.replay(names, options)
        #expect(outcomes.allSatisfy { $0.status == .updated }, "\(outcomes)")
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

    @Test("with states evicted and reloaded in every partition the result is the same")
    func equivalenceUnderEviction() throws {
        let log = orderLog(count: 6_000, streams: 3_000, seed: 99)
        let sequential = try states(log: log, parallel: 1, batch: 1_000)
        #expect(try states(log: log, parallel: 3, batch: 200, memory: 1 << 20) == sequential)
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
}
