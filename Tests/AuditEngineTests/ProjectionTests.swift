import Foundation
import GRDB
import Testing

@testable import AuditEngine

@Suite("Projections")
struct ProjectionTests {
    @Test("order_totals folds to the same states as an independent computation")
    func orderTotalsMatchesIndependent() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 3_000, streams: 400, seed: 1)
        let outcome = try w.replay(["order_totals"])
        #expect(outcome.map(\.status) == [.rebuilt])
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test(
        "the same events give byte-identical state whatever the batch size, checkpoint interval or memory",
        arguments: [(1, 1), (7, 13), (500, 100), (20_000, 200_000)])
    func determinism(batch: Int, checkpoint: Int) throws {
        let (w, log) = try Workspace.withOrderTotals(count: 1_500, streams: 300, seed: 2)
        var options = ReplayOptions()
        options.batchSize = batch
        options.checkpointEvery = checkpoint
        try w.replay(["order_totals"], options)
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("with a small memory limit states are evicted and reloaded, with the same result")
    func evictionRoundTrip() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 6_000, streams: 3_000, seed: 3)
        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 100_000))
        options.batchSize = 500
        options.checkpointEvery = 500
        try w.replay(["order_totals"], options)
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    /// Keys dropped again and again: each read-back must find the state of the newest
    /// write, from the cache or the table, also while that write is still in flight, and
    /// with a cache too small for all of them (the oldest runs go, read from the table).
    @Test(
        "states dropped at many checkpoints are read back newest first, also while their checkpoint is in flight",
        arguments: [(false, nil), (true, nil), (true, 50_000)])
    func repeatedEviction(hold: Bool, cacheBudget: Int?) throws {
        let streams = 2_500
        let (w, log) = try Workspace.withOrderTotals(count: 20_000, streams: streams, seed: 5)
        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 100_000))
        options.batchSize = 250
        options.checkpointEvery = 1_000
        options.holdCheckpoints = hold
        options.stateCacheBudget = cacheBudget
        let outcome = try #require(try w.replay(["order_totals"], options).first)
        // More read-backs than keys: some key was dropped, read back and dropped again.
        #expect(outcome.timings.statesReadBack > 2 * streams, "\(outcome.timings.statesReadBack) read back")
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("many keys in a small VM: checkpoints are taken when memory fills, instead of failing the projection")
    func memoryDrivenCheckpoints() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 8_000, streams: 6_000, seed: 6)
        var options = ReplayOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 100_000))
        options.batchSize = 250
        let outcome = try w.replay(["order_totals"], options)
        #expect(outcome.first?.status == .rebuilt, "\(String(describing: outcome.first?.status))")
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("a second replay on the same database while one runs is refused, naming the holder; the lock goes with its holder")
    func oneReplayAtATime() throws {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        try w.ingest(orderLog(count: 100, streams: 10, seed: 7))
        let held = try ReplayLock(databasePath: w.store.path)
        #expect {
            try w.replay(["order_totals"])
        } throws: { error in
            "\(error)".contains("another replay is running") && "\(error)".contains("pid \(getpid())")
        }
        withExtendedLifetime(held) {}
        _ = consume held
        #expect(try w.replay(["order_totals"]).first?.status == .rebuilt)
    }

    @Test("new events are picked up by the next replay, equal to a full rebuild")
    func incremental() throws {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        let log = orderLog(count: 2_000, streams: 200, seed: 4)
        try w.ingest(Array(log[..<1_200]))
        try w.replay(["order_totals"])
        try w.ingest(Array(log[1_200...]))
        let outcome = try w.replay(["order_totals"])
        // 2,001: the first replay's CodeBuilt event came before the last 800.
        #expect(outcome.first?.status == .updated && outcome.first?.position == 2_001)
        #expect(try w.replay(["order_totals"]).first?.status == .upToDate)
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("state is canonical JSON: sorted keys, integers and floats kept apart, arrays, nested tables, keys that look like numbers")
    func canonicalState() throws {
        let w = try Workspace()
        w.projection("shapes", """
            return {
              on = { T = function(s, e)
                s.z = 1; s.a = 1.0; s.m = { b = { 3, 2, 1 }, a = true }; s.big = 2^53; s.txt = "é\\n\\"q\\""
                s.half = 0.5; s.neg = -0.0; s.tiny = 1e-7; s.list = { "x", { y = 1 } }; s["7"] = "seven"
                s.ints = { ["10"] = -42, ["2"] = math.mininteger, ["-3"] = math.maxinteger, ["k\\1\\"y"] = "ctl\\1" }
                local wide = {}
                for i = 30, 1, -1 do wide[tostring(i * 3)] = i end
                wide.w = 0
                s.wide = wide
              end },
            }
            """)
        try w.ingest([eventLine(stream: "k", type: "T", data: "{}")])
        try w.replay(["shapes"])
        #expect(try w.state("shapes", "k")
            == #"{"7":"seven","a":1.0,"big":9007199254740992.0,"half":0.5,"#
            + #""ints":{"-3":9223372036854775807,"10":-42,"2":-9223372036854775808,"k\u0001\"y":"ctl\u0001"},"#
            + #""list":["x",{"y":1}],"m":{"a":true,"b":[3,2,1]},"neg":-0.0,"tiny":1e-07,"txt":"é\n\"q\"","#
            + #""wide":{"12":4,"15":5,"18":6,"21":7,"24":8,"27":9,"3":1,"30":10,"33":11,"36":12,"39":13,"42":14,"45":15,"48":16,"51":17,"54":18,"57":19,"6":2,"60":20,"63":21,"66":22,"69":23,"72":24,"75":25,"78":26,"81":27,"84":28,"87":29,"9":3,"90":30,"w":0},"z":1}"#)
    }

    @Test("event fields reach handlers: integers as integers, floats as floats, null as nil")
    func eventFields() throws {
        let w = try Workspace()
        w.projection("fields", """
            return {
              on = { T = function(s, e)
                s.seq = e.seq; s.version = e.version; s.type = e.type; s.stream = e.stream; s.id = e.id
                s.occurred = e.occurred_at; s.recorded_is_time = #e.recorded_at == 24
                s.int_is_integer = math.type(e.data.n) == "integer"; s.float_is_float = math.type(e.data.f) == "float"
                s.null_is_nil = e.data.z == nil; s.actor = e.meta.actor; s.nested = e.data.o.list[2]
              end },
            }
            """)
        // Replayed in one pass with projections that read fewer fields (the events are
        // read once, with the fields any of them reads), and alone.
        w.projection("counts", "return { on = { T = function(s) s.n = (s.n or 0) + 1 end } }")
        w.projection("actors", "return { on = { T = function(s, e) s.actor = e.meta.actor end } }")
        try w.ingest([#"{"id":"x","stream":"k","type":"T","occurred_at":"2024-06-30T12:00:00+02:00","data":{"n":3,"f":3.0,"z":null,"o":{"list":[1,"two"]}},"meta":{"actor":"ann"}}"#])
        let all = #"{"actor":"ann","float_is_float":true,"id":"x","int_is_integer":true,"nested":"two","null_is_nil":true,"occurred":"2024-06-30T10:00:00.000Z","recorded_is_time":true,"seq":1,"stream":"k","type":"T","version":1}"#
        try w.replay(["counts", "fields"])
        #expect(try w.state("fields", "k") == all)
        #expect(try w.state("counts", "k") == #"{"n":1}"#)
        try w.replay(["actors"])
        #expect(try w.state("actors", "k") == #"{"actor":"ann"}"#)
        var rebuild = ReplayOptions()
        rebuild.rebuild = true
        rebuild.useSnapshots = false
        try w.replay(["fields"], rebuild)
        #expect(try w.state("fields", "k") == all)
    }

    @Test("key = \"global\", a key function (nil skips), the streams glob, and handlers that return a new state")
    func keysAndStreams() throws {
        let w = try Workspace()
        w.projection("total", """
            return { key = "global", init = function() return { n = 0 } end,
                     on = { A = function(s, e) s.n = s.n + 1 end, B = function(s, e) return { n = s.n + 10 } end } }
            """)
        w.projection("by_region", """
            return { key = function(e) return e.data.region end, streams = "shop-*",
                     on = { A = function(s, e) s.n = (s.n or 0) + 1 end } }
            """)
        try w.ingest([
            eventLine(stream: "shop-1", type: "A", data: #"{"region":"eu"}"#),
            eventLine(stream: "shop-2", type: "A", data: #"{"region":"us"}"#),
            eventLine(stream: "shop-3", type: "A", data: #"{}"#),
            eventLine(stream: "other", type: "A", data: #"{"region":"eu"}"#),
            eventLine(stream: "shop-1", type: "B", data: #"{}"#),
        ])
        try w.replay(["total", "by_region"])
        #expect(try w.dump("total") == [#"global {"n":14}"#])
        #expect(try w.dump("by_region") == [#"eu {"n":1}"#, #"us {"n":1}"#])
    }

    @Test("declared columns are filled from the state and queryable with parameters")
    func columnsAndQuery() throws {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        try w.ingest(orderLog(count: 500, streams: 50, seed: 5))
        try w.replay(["order_totals"])
        var rows: [[SQLValue]] = []
        try w.store.query(
            sql: "SELECT key, customer, total FROM order_totals WHERE customer = :c AND total >= :min ORDER BY key",
            parameters: ["c": "c3", "min": "0"], header: { #expect($0 == ["key", "customer", "total"]) }, row: { rows.append($0) })
        #expect(!rows.isEmpty && rows.allSatisfy { $0[1] == .text("c3") })
        #expect(throws: QueryError.self) { try w.store.query(sql: "SELECT :x", header: { _ in }, row: { _ in }) }
        #expect(throws: QueryError.self) { try w.store.query(sql: "DELETE FROM events", header: { _ in }, row: { _ in }) }
        #expect(throws: QueryError.self) { try w.store.query(sql: "SELEC 1", header: { _ in }, row: { _ in }) }
    }

    @Test("helper modules load from projections/lib with require")
    func requireLib() throws {
        let w = try Workspace()
        w.module("double", "local M = {} function M.of(x) return 2 * x end return M")
        w.projection("p", #"local d = require "double" return { on = { T = function(s, e) s.v = d.of(21) end } }"#)
        try w.ingest([eventLine(stream: "k", type: "T")])
        try w.replay(["p"])
        #expect(try w.state("p", "k") == #"{"v":42}"#)
    }

    @Test(
        "a malformed projection is refused with the file and what to fix",
        arguments: [
            ("return 5", "must return a table"),
            ("return { on = { T = 1 } }", #"on["T"] must be a function"#),
            ("return { version = 1 }", "needs 'on'"),
            ("return { on = {}, colums = {} }", "unknown field 'colums'"),
            (#"return { on = {}, columns = { x = "float" } }"#, "column 'x' must have a type"),
            (#"return { on = {}, key = "user" }"#, "'key' must be"),
            ("return { on = {}, version = 0 }", "'version' must be an integer"),
            ("return {", "unexpected symbol"),
            ("error('boom')", "boom"),
        ])
    func malformed(source: String, message: String) throws {
        let w = try Workspace()
        w.projection("bad", source)
        #expect {
            try w.load("bad")
        } throws: { error in
            let text = "\(error)"
            return text.contains(message) && text.contains("bad.lua")
        }
    }

    @Test("changing the code rebuilds beside the live table, which keeps serving until the build catches up")
    func zeroDowntimeRebuild() throws {
        let w = try Workspace()
        w.projection("count", "return { version = 1, on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<100).map { _ in eventLine(stream: "k", type: "T") })
        try w.replay(["count"])
        #expect(try w.state("count", "k") == #"{"n":100}"#)

        w.projection("count", "return { version = 2, on = { T = function(s, e) s.n = (s.n or 0) + 2 end } }")
        var partial = ReplayOptions()
        partial.toSeq = 50
        #expect(try w.replay(["count"], partial).first?.status == .building)
        #expect(try w.state("count", "k") == #"{"n":100}"#)  // the old table still answers
        #expect(try w.replay(["count"]).first?.status == .rebuilt)
        #expect(try w.state("count", "k") == #"{"n":200}"#)
        let (live, builds) = try w.store.projectionRecords()
        #expect(live["count"]?.version == 2 && builds.isEmpty)
    }

    @Test("a rebuild that fails leaves the old table serving; a failing projection does not stop the others")
    func failureIsolation() throws {
        let w = try Workspace()
        w.projection("count", "return { version = 1, on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        w.projection("other", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<10).map { _ in eventLine(stream: "k", type: "T") })
        try w.replay(["count", "other"])
        w.projection("count", "return { version = 2, on = { T = function(s, e) if e.seq == 7 then error('bad data') end end } }")
        try w.ingest((0..<5).map { _ in eventLine(stream: "k", type: "T") })
        let outcomes = try w.replay(["count", "other"])
        guard case .failed(let error) = outcomes[0].status else {
            Issue.record("expected a failure, got \(outcomes[0].status)")
            return
        }
        #expect(error.seq == 7 && error.description.contains("count.lua:1: bad data") && error.description.contains("handler \"T\""))
        // The event's id and data are shown, though the projection's code reads neither.
        let id = try #require(try w.store.events(EventFilter(fromSeq: 7, limit: 1)).first?.id)
        #expect(error.description.contains("(event \(id), stream \"k\")") && error.description.contains(#"the event's data: {"amount":10}"#))
        #expect(outcomes[1].status == .updated)
        #expect(try w.state("count", "k") == #"{"n":10}"#)
        #expect(try w.state("other", "k") == #"{"n":15}"#)
        let (_, builds) = try w.store.projectionRecords()
        #expect(builds["count"]?.status == "failed")
    }

    @Test("a failure mid-way keeps nothing of what the projection wrote after its last checkpoint")
    func nothingHalfWritten() throws {
        let w = try Workspace()
        w.projection("p", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1; if e.seq == 25 then error('stop') end end } }")
        try w.ingest((0..<40).map { i in eventLine(stream: "k\(i % 3)", type: "T") })
        var options = ReplayOptions()
        options.batchSize = 10
        options.checkpointEvery = 10
        let outcome = try w.replay(["p"], options)
        guard case .failed = outcome.first?.status else {
            Issue.record("expected failure")
            return
        }
        #expect(try w.store.projectionRecords().builds["p"]?.position == 20)
    }

    @Test("a checkpoint that cannot be written fails the replay, leaves the projection at its last committed checkpoint, and the next replay resumes from there")
    func failedCheckpointWrite() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 400, streams: 30, seed: 11)
        // Checkpoints commit on their own thread: the one past seq 200 fails there, as a
        // full disk would, and the replay must still see it.
        try w.store.writeTransaction { db in
            try db.execute(sql: """
                CREATE TRIGGER full_disk BEFORE UPDATE OF position ON projection_builds WHEN NEW.position > 200
                BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END
                """)
        }
        var options = ReplayOptions()
        options.batchSize = 50
        options.checkpointEvery = 50
        #expect(throws: (any Error).self) { try w.replay(["order_totals"], options) }
        #expect(try w.store.projectionRecords().builds["order_totals"]?.position == 200)
        let table = try w.store.readTransaction { db in
            try Row.fetchAll(db, sql: "SELECT key, state FROM order_totals__build ORDER BY key").map { "\($0[0] as String) \($0[1] as String)" }
        }
        #expect(table == (try expectedOrderTotals(Array(log.prefix(200)))))

        try w.store.writeTransaction { db in try db.execute(sql: "DROP TRIGGER full_disk") }
        try w.replay(["order_totals"], options)
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }
}
