import Foundation
import Testing

@testable import AuditEngine

/// The limits that stop a script (docs/projections.md, the sandbox): deterministic where
/// DECISIONS 11 says so, and named in the error.
@Suite("Sandbox limits")
struct LimitsTests {
    /// A projection whose handler runs about `e.data.n` instructions.
    static let counting = "return { on = { T = function(s, e) for i = 1, e.data.n do end s.n = e.data.n end } }"

    @Test("an event near its budget passes or fails alike whatever the batch size and parallelism")
    func budgetIsDeterministic() throws {
        let w = try Workspace()
        w.projection("p", Self.counting)
        // Events just under and just over the budget, in an order that leaves each
        // partition's VM at a different point of the hook's count when one begins.
        let costs = (0..<120).map { 8_700 + ($0 * 7_919) % 2_600 }
        try w.ingest(costs.enumerated().map { #"{"stream":"s\#($0.offset % 7)","type":"T","data":{"n":\#($0.element)}}"# })
        let failures = try Self.failedSeqsUnderEveryPartitioning(w, saying: "instruction budget of 10000 instructions exceeded")
        #expect(failures.count == 1, "failed at seqs \(failures)")
    }

    /// Rebuilds `w`'s projection `p` under a budget of 10,000 instructions per event at
    /// several batch sizes and parallelisms, each of which must stop deterministically
    /// with an error `saying` it: the seqs they stopped at (one, when the budget is).
    static func failedSeqsUnderEveryPartitioning(_ w: Workspace, saying message: String) throws -> Set<Int64?> {
        var failures: Set<Int64?> = []
        for (batch, parallel) in [(20_000, 1), (1, 1), (7, 2), (13, 3), (20_000, 2)] {
            var options = ReplayOptions()
            options.rebuild = true
            options.batchSize = batch
            options.parallel = parallel
            options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 64 << 20, instructionsPerEvent: 10_000))
            let outcome = try w.store.replay([try w.load("p")], options: options)[0]
            guard case .failed(let error) = outcome.status else {
                Issue.record("batch \(batch), parallel \(parallel): not stopped (\(outcome.status))")
                continue
            }
            #expect(error.description.contains(message) && error.deterministic, "\(error)")
            failures.insert(error.seq)
        }
        return failures
    }

    @Test("pairs, next and setmetatable are charged for the keys a table holds, not the room its history left: the same from memory and read back")
    func orderedChargesIgnoreHistory() throws {
        // s.t held 3,000 keys and holds 3: in memory its table keeps the room for 3,000,
        // read back it has room for 3. A charge by room would fail Walk in one run only.
        let projection = """
            return { limits = { instructions = 60000 }, on = {
              Fill = function(s, e) s.t = {} for i = 1, 3000 do s.t["k" .. i] = i end end,
              Empty = function(s, e) for i = 4, 3000 do s.t["k" .. i] = nil end end,
              Walk = function(s, e)
                local n = 0
                for r = 1, 1000 do
                  for k in pairs(s.t) do n = n + 1 end
                  if next(s.t) then n = n + 1 end
                  setmetatable({}, s.t)
                end
                s.n = n
              end,
            } }
            """
        let events = ["Fill", "Empty", "Walk"].map { eventLine(stream: "k", type: $0, data: "{}") }
        let memory = try Workspace()
        memory.projection("p", projection)
        try memory.ingest(events)
        #expect(try memory.replay(["p"])[0].status == .rebuilt)
        let readBack = try Workspace()
        readBack.projection("p", projection)
        try readBack.ingest(Array(events.prefix(2)))
        #expect(try readBack.replay(["p"])[0].status == .rebuilt)
        try readBack.ingest([events[2]])
        let outcome = try readBack.replay(["p"])[0]
        #expect(outcome.status != .rebuilt && !"\(outcome.status)".contains("failed"), "\(outcome.status)")
        #expect(try memory.state("p", "k") == readBack.state("p", "k"))
        #expect(try memory.state("p", "k")?.contains(#""n":4000"#) == true)
    }

    @Test("an event's budget covers its key's init, whether or not the key's state was asked for")
    func initInTheEventsBudget() throws {
        // For key b, init alone and the handler alone each fit the budget; together they do not.
        let source = """
            return {
              init = function(key) if key == "b" then for i = 1, 6000 do end end return {} end,
              on = { T = function(s, e) if e.stream == "b" then for i = 1, 6000 do end end s.n = (s.n or 0) + 1 end },
            }
            """
        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 64 << 20, instructionsPerEvent: 10_000))
        // A rebuild from seq 1 starts new keys from init without asking for stored states…
        let w = try Workspace()
        w.projection("p", source)
        try w.ingest([eventLine(stream: "a", type: "T"), eventLine(stream: "b", type: "T")])
        let rebuilt = try w.store.replay([try w.load("p")], options: options)[0]
        // … an update asks for the stored state of a key not in memory first.
        let u = try Workspace()
        u.projection("p", source)
        try u.ingest([eventLine(stream: "a", type: "T")])
        #expect(try u.store.replay([try u.load("p")], options: options)[0].status == .rebuilt)
        try u.ingest([eventLine(stream: "b", type: "T")])
        let updated = try u.store.replay([try u.load("p")], options: options)[0]
        for (name, outcome) in [("rebuild", rebuilt), ("update", updated)] {
            guard case .failed(let error) = outcome.status else {
                Issue.record("\(name): not stopped (\(outcome.status))")
                continue
            }
            // The update's event b follows the first build's CodeBuilt event (seq 2).
            #expect(error.seq == (name == "rebuild" ? 2 : 3) && error.description.contains("instruction budget of 10000 instructions exceeded"), "\(name): \(error)")
        }
    }

    @Test("a string of the limit's length can be made; one byte more cannot, by any path")
    func stringSize() throws {
        let limit = LuaLimits.maxStringBytes
        for path in 0...4 {
            let w = try Workspace()
            w.projection("p", """
                return { limits = { instructions = 1e9 }, on = { T = function(s, e)
                  local half = ("x"):rep(\(limit / 2))
                  local exact = half .. half
                  s.ok = #exact
                  local path = e.data.path
                  if path == 1 then local _ = exact .. "y" end
                  if path == 2 then local _ = ("xy"):rep(\(limit / 2), "z") end
                  if path == 3 then local _ = table.concat({ exact, "y" }) end
                  if path == 4 then local _ = exact:gsub("^x", "yy") end
                end } }
                """)
            try w.ingest([#"{"stream":"k","type":"T","data":{"path":\#(path)}}"#])
            let outcome = try w.replay(["p"])[0]
            if path == 0 {
                let state = try w.state("p", "k")
                #expect(outcome.status == .rebuilt && state == #"{"ok":\#(limit)}"#)
                continue
            }
            guard case .failed(let error) = outcome.status else {
                Issue.record("path \(path): not stopped (\(outcome.status))")
                continue
            }
            #expect(error.seq == 1 && error.description.contains("string size limit of 16 MB exceeded") && error.deterministic, "\(error)")
        }
    }

    @Test("the CPU time limit stops what the budget cannot count, and says it is machine-dependent")
    func cpuTime() throws {
        let w = try Workspace()
        w.projection("p", """
            return { limits = { instructions = 1e8, seconds = 0.2 }, on = { T = function(s, e)
              local a, b = ("x"):rep(1e7), ("x"):rep(1e7)
              for i = 1, 200000 do local _ = a == b end
            end } }
            """)
        try w.ingest([eventLine(stream: "k", type: "T")])
        let start = ContinuousClock.now
        let outcome = try w.replay(["p"])[0]
        #expect(ContinuousClock.now - start < .seconds(10))
        guard case .failed(let error) = outcome.status else {
            Issue.record("not stopped (\(outcome.status))")
            return
        }
        #expect(error.seq == 1 && error.description.contains(#"handler "T""#), "\(error)")
        #expect(error.description.contains("CPU time limit of 0.2 s per event exceeded (") && error.description.contains("machine-dependent"), "\(error)")
        #expect(!error.deterministic)
    }

    @Test("limits out of range are refused where they are given")
    func ranges() throws {
        let w = try Workspace()
        for limits in ["{ memory_mb = 65537 }", "{ seconds = 0 }", "{ seconds = 3601 }", "{ instructions = 0 }", "{ cpu = 1 }"] {
            w.projection("p", "return { limits = \(limits), on = { T = function() end } }")
            #expect(throws: ProjectionError.self, "\(limits)") { try w.load("p") }
        }
        w.projection("p", "return { limits = { seconds = 1.5, memory_mb = 65536 }, on = { T = function() end } }")
        #expect(try w.load("p").limits == LuaLimits(memoryBytes: 65536 << 20, instructionsPerEvent: 1_000_000, cpuSecondsPerEvent: 1.5))
        #expect(throws: (any Error).self) { _ = try LuaVM(limits: LuaLimits(memoryBytes: -1, instructionsPerEvent: 1)) }
        #expect(throws: (any Error).self) { _ = try LuaVM(limits: LuaLimits(memoryBytes: Int.max, instructionsPerEvent: 1)) }
    }
}
