import Foundation
import Testing

@testable import AuditEngine

/// Real attack classes against the sandbox. Each must stop only the hostile
/// projection with a clear error naming it, the seq and the cause, while a healthy
/// projection replayed in the same pass finishes.
@Suite("The Lua sandbox")
struct SandboxTests {
    static let attacks: [(String, String, String)] = [
        ("os.execute", #"os.execute("touch /tmp/pwned")"#, "global 'os'"),
        ("io.open", #"io.open("/etc/passwd")"#, "global 'io'"),
        ("require os", #"require "os""#, "module 'os' not found"),
        ("require a file path", #"require "../../etc/passwd""#, "not found"),
        ("binary chunk", #"local f, err = load("\27LuaT\0\25\147\r\n\26\n\4\8\8") assert(f, err)"#, "binary chunk"),
        ("string.dump", "string.dump(function() end)", "field 'dump'"),
        ("dump through the string metatable", #"("").dump(function() end)"#, "(field 'dump')"),
        ("debug.getregistry", "debug.getregistry()", "global 'debug'"),
        ("globals through getmetatable", #"local mt = getmetatable("") mt.__index.rep = nil"#, "index a nil value"),
        ("collectgarbage", #"collectgarbage("collect")"#, "global 'collectgarbage'"),
        ("loadfile", #"loadfile("/etc/passwd")"#, "global 'loadfile'"),
        ("package.loadlib", #"package.loadlib("libc.so.6", "system")"#, "global 'package'"),
        ("coroutine", "coroutine.wrap(function() end)()", "global 'coroutine'"),
        ("infinite loop", "while true do end", "instruction budget of 10000000 instructions exceeded"),
        ("pcall swallowing the budget", "while true do pcall(function() while true do end end) end", "instruction budget"),
        ("string.rep bomb", "local x = string.rep('x', 1e9)", "string.rep: count 1000000000 is over the limit"),
        ("string.rep of empty strings", "string.rep('', 3e9)", "over the limit"),
        ("memory bomb by doubling", "local x = 'x' for i = 1, 40 do x = x .. x end", "memory limit of 8 MB exceeded"),
        ("table growing forever", "local t = {} for i = 1, 1e9 do t[i] = i end", "memory limit of 8 MB exceeded"),
        ("pcall swallowing memory", "pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) s.after = true", "memory limit of 8 MB exceeded"),
        ("table.move over a huge range", "table.move({}, 1, 1e8, 2)", "table.move: range"),
        ("deep recursion", "local function f(n) return 1 + f(n + 1) end f(1)", "memory limit of 8 MB exceeded"),
        ("error with a table", "error({ code = 42 })", "error thrown with a table value"),
        ("error with nil", "error()", "error thrown with a nil value"),
        ("__gc finalizer", "setmetatable({}, { __gc = function() end })", "__gc is not allowed"),
        ("__close", "local x <close> = setmetatable({}, { __close = function() end })", "__close is not allowed"),
        ("weak tables", #"setmetatable({}, { __mode = "k" })"#, "__mode is not allowed"),
        ("%p address", #"s.p = string.format("%p", {})"#, "%p prints an address"),
        ("a global from a handler", "counter = 1", #"cannot change global "counter": a projection can change nothing but s"#),
        ("a bad return value", "return 5", "return a new state table, not a number"),
    ]

    @Test("each attack is stopped with a clear error; the engine and other projections carry on", arguments: attacks)
    func attack(name: String, code: String, expected: String) throws {
        let w = try Workspace()
        w.projection("hostile", """
            return {
              limits = { memory_mb = 8, instructions = 10000000 },
              on = { T = function(s, e)
                if e.seq == 2 then
                  \(code)
                end
                s.n = (s.n or 0) + 1
              end },
            }
            """)
        w.projection("healthy", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<3).map { _ in eventLine(stream: "k", type: "T") })
        let outcomes = try w.replay(["hostile", "healthy"])
        guard case .failed(let error) = outcomes[0].status else {
            Issue.record("\(name): not stopped, status \(outcomes[0].status)")
            return
        }
        #expect(error.description.contains(expected), "\(name): \(error)")
        #expect(error.projection == "hostile" && error.seq == 2)
        #expect(outcomes[1].status == .rebuilt)
        #expect(try w.state("healthy", "k") == #"{"n":3}"#)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
    }

    static let badStates: [(String, String, String)] = [
        ("a function in state", "s.f = function() end", #"a function cannot be stored in state (only tables, strings, numbers and booleans) at the state of key "k1".f"#),
        ("NaN in state", "s.x = 0/0", #"NaN is not allowed in state (JSON cannot store it) at the state of key "k1".x"#),
        ("a cycle in state", "s.me = s", #"a table that contains itself (a cycle) cannot be stored in state at the state of key "k1".me"#),
        ("a non-UTF-8 string in state", #"s.b = "\255""#, #"a string is not valid UTF-8 at the state of key "k1".b"#),
        ("a float table key", "s[1.5] = 1", #"a table key of type float (only string keys, or the integers 1..n of a list, can be stored) at the state of key "k1""#),
        ("an integer key outside 1..n", "s.c = { [5] = 1 }", #"integer key 5 in a table whose integer keys are not 1..n (a list is stored as a JSON array and comes back as one; for a table keyed by numbers use t[tostring(k)]) at the state of key "k1".c"#),
        ("a list with a hole", "s.l = { 1, nil, 3 }", #"integer key 3 in a table whose integer keys are not 1..n"#),
        ("integer and string keys", "s[1] = true", #"integer key 1 beside string keys"#),
        ("a table in two places", "s.a = {} s.b = { s.a }", #"a table stored in two places in one state (a stored state is a tree: each place would be read back as a copy of its own); store a copy here at the state of key "k1".b[1]"#),
        ("a metatable", "s.m = setmetatable({}, { __index = function() return 0 end })", #"a table with a metatable cannot be stored in state (it would be read back without it); store a plain table at the state of key "k1".m"#),
    ]

    @Test("state that JSON cannot store fails the projection at the event that put it there, naming the key and where", arguments: badStates)
    func badState(name: String, code: String, expected: String) throws {
        let w = try Workspace()
        w.projection("hostile", "return { on = { T = function(s, e) s.n = 1 if e.seq == 2 then \(code) end end } }")
        w.projection("healthy", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<3).map { eventLine(stream: "k\($0)", type: "T") })
        let outcomes = try w.replay(["hostile", "healthy"])
        guard case .failed(let error) = outcomes[0].status else {
            Issue.record("\(name): not stopped, status \(outcomes[0].status)")
            return
        }
        #expect(error.description.contains(expected), "\(name): \(error)")
        #expect(error.seq == 2 && error.description.contains(#"handler "T" (event "#) && error.description.contains(#"stream "k1")"#), "\(name): \(error)")
        #expect(outcomes[1].status == .rebuilt)
        let records = try w.store.projectionRecords()
        #expect(records.live["hostile"] == nil)
        #expect(records.builds["hostile"]?.status == "failed" && records.builds["hostile"]?.error?.contains(expected) == true)
    }

    @Test("among many events of one checkpoint, the failure names the last event that changed the failing state, and the position stored")
    func checkpointFailureNamesTheEvent() throws {
        let w = try Workspace()
        w.projection("ratio", """
            return { on = { T = function(s, e)
              -- Past the size a state is checked at after each event: checked when written out.
              if not s.pad then s.pad = {} for i = 1, 300 do s.pad[i] = i end end
              s.n = (s.n or 0) + 1
              if e.data.amount == 100 then s.avg = 0/0 end
            end } }
            """)
        try w.ingest((1...300).map { i in eventLine(stream: "acct-\(i % 7)", type: "T", data: #"{"amount":\#(i)}"#, extra: #","id":"e\#(i)""#) })
        let outcome = try w.replay(["ratio"])[0]
        guard case .failed(let error) = outcome.status else {
            Issue.record("not stopped: \(outcome.status)")
            return
        }
        // seq 100 set NaN in acct-2; its state last changed at seq 296, the last acct-2 event.
        #expect(error.seq == 296, "\(error)")
        #expect(error.description.contains(#"NaN is not allowed in state (JSON cannot store it) at the state of key "acct-2".avg"#), "\(error)")
        #expect(error.description.contains(#"handler "T" (event e296, stream "acct-2")"#), "\(error)")
        #expect(outcome.position == 0, "nothing was stored, whatever the batch reached")
    }

    @Test("tostring of a table is stable (no address), and library functions still work")
    func deterministicLibraries() throws {
        let w = try Workspace()
        w.projection("p", """
            return { on = { T = function(s, e)
              s.t = tostring({}); s.f = string.format("%05.1f|%s|%d", 3.14159, "x", 7); s.up = ("abc"):upper()
              s.r = ("ab"):rep(3, "-"); s.m = math.max(3, 9); s.u = utf8.char(233); s.c = table.concat({ 1, 2 }, ",")
              s.loaded = load("return 1 + 1")()
            end } }
            """)
        try w.ingest([eventLine(stream: "k", type: "T")])
        try w.replay(["p"])
        #expect(try w.state("p", "k") == #"{"c":"1,2","f":"003.1|x|7","loaded":2,"m":9,"r":"ab-ab-ab","t":"table","u":"é","up":"ABC"}"#)
    }

    @Test("a projection's top level runs under the limits too")
    func topLevelLoop() throws {
        let w = try Workspace()
        w.projection("p", "while true do end return { on = {} }")
        #expect {
            try w.load("p", limits: LuaLimits(memoryBytes: 8 << 20, instructionsPerEvent: 100_000))
        } throws: { error in
            "\(error)".contains("instruction budget")
        }
    }
}
