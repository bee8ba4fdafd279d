import Foundation
import Testing

@testable import AuditEngine

/// A projection can change nothing but `s` (DECISIONS 9): what its code set up when it
/// loaded is shared by every key a VM folds, so a handler that changed it would carry
/// state from one key to the next, and give other results with --parallel, restarts
/// or another batch size. Every way to write is refused at the event, naming what.
@Suite("What a projection loaded is read-only to handlers")
struct ReadOnlyTests {
    static let setup = """
        local money = require "money"
        local cache = {}
        local config = { rates = { a = 1 }, list = { 3, 1, 2 } }
        local count = 0
        local label = "x"
        local Account = {}
        Account.__index = Account
        function Account.new(n) return setmetatable({ n = n }, Account) end
        function Account:get() return self.n end
        Helper = { hits = 0 }
        local memo = setmetatable({}, { __index = function(t, k) rawset(t, k, #k) return #k end })
        local sized = setmetatable({}, { __len = function(t) rawset(t, 1, true) return 1 end })
        local defaults = setmetatable({ a = 1 }, { __index = function(t, k) return rawget(t, "a") + #k end, __len = function() return 7 end })
        local boxed = setmetatable({}, { __index = {} })
        local function uses() return cache, config, count, label, Account, memo, sized, defaults, boxed end
        """

    static let module = """
        local M = { rounding = 100, seen = {} }
        local calls = 0
        function M.cents(x) return math.floor(x * M.rounding + 0.5) end
        function M.count() calls = calls + 1 return calls end
        function M.lazy() if not M.table then M.table = {} end return M.table end
        M.memo = setmetatable({}, { __index = function(t, k) rawset(t, k, 1) return 1 end })
        return M
        """

    static let writes: [(String, String, String)] = [
        ("a new global", "seen = 1", #"cannot change global "seen""#),
        ("a global set at load", "Helper = nil", #"cannot change global "Helper""#),
        ("a field of a global table", "Helper.hits = Helper.hits + 1", #"cannot change global "Helper".hits"#),
        ("rawset on _G", #"rawset(_G, "seen", 1)"#, "cannot change _G.seen"),
        ("rawset on _ENV", #"rawset(_ENV, "seen", 1)"#, #"cannot change global "seen""#),
        ("_G's metatable", "setmetatable(_G, { __index = function() return 1 end })", "cannot change the metatable of _G"),
        ("_ENV's metatable", "setmetatable(_ENV, {})", "cannot change the metatable of _ENV (the globals)"),
        ("a library function", #"string.upper = function() return "PWNED" end"#, "cannot change string.upper"),
        ("a library table through _G", "_G.math.floor = nil", "cannot change math.floor"),
        ("table.insert into a library", "table.insert(table, print)", "cannot change table[1]"),
        ("a module's field", "money.rounding = 1000", #"cannot change module "money".rounding"#),
        ("a module's nested table", "money.seen[e.seq] = true", #"cannot change module "money".seen[2]"#),
        ("a module function that writes its table", "money.lazy()", #"cannot change module "money".table"#),
        ("a module's local, through its function", "money.count()", #"cannot change upvalue "calls" of"#),
        ("an upvalue table", "cache[e.stream] = 1", #"cannot change upvalue "cache" of"#),
        ("an upvalue table's nested table", "config.rates.a = 2", #"upvalue "config" of"#),
        ("table.insert into an upvalue", "table.insert(cache, 1)", #"cannot change upvalue "cache" of"#),
        ("table.remove from an upvalue", "table.remove(config.list)", #"upvalue "config" of"#),
        ("table.sort of an upvalue", "table.sort(config.list)", #"upvalue "config" of"#),
        ("table.move into an upvalue", "table.move({ 1 }, 1, 1, 1, cache)", #"cannot change upvalue "cache" of"#),
        ("rawset on an upvalue", "rawset(cache, 1, 1)", #"cannot change upvalue "cache" of"#),
        ("an upvalue's metatable", "setmetatable(cache, {})", #"cannot change the metatable of upvalue "cache""#),
        ("a number upvalue", "count = count + 1", #"cannot change upvalue "count" of"#),
        ("a string upvalue", #"label = label .. "!""#, #"cannot change upvalue "label" of"#),
        ("an upvalue table replaced", "cache = {}", #"cannot change upvalue "cache" of"#),
        ("an upvalue, from a function made in the handler", "local function bump() count = count + 1 end bump()", #"cannot change upvalue "count" of"#),
        ("_ENV replaced", "_ENV = { s = s }", #"cannot change upvalue "_ENV" of"#),
        ("a class table", "Account.extra = 1", #"upvalue "Account" of"#),
        ("a class through an object's metatable", "getmetatable(Account.new(1)).get = nil", #"upvalue "Account" of"#),
        ("a global, from code loaded in the handler", #"load("seen = 1")()"#, #"cannot change global "seen""#),
        // Lua calls a table's __index and __len with the table itself: they are given the view.
        ("a memo its __index function fills", "local n = memo[e.stream]", #"cannot change upvalue "memo" of"#),
        ("a module's memo its __index function fills", "local n = money.memo.x", #"cannot change module "money".memo.x"#),
        ("a table its __len function changes", "local n = #sized", #"cannot change upvalue "sized" of"#),
        ("the metatable given to setmetatable at load", "getmetatable(boxed).x = 1", "(metatable).x"),
    ]

    func run(_ code: String) throws -> (failure: ProjectionError?, healthy: ReplayOutcome.Status) {
        let w = try Workspace()
        w.module("money", Self.module)
        w.projection("p", """
            \(Self.setup)
            return { on = { T = function(s, e)
              uses()
              if e.seq == 2 then
                \(code)
              end
              s.n = (s.n or 0) + 1
            end } }
            """)
        w.projection("healthy", "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.ingest((0..<3).map { _ in eventLine(stream: "k", type: "T") })
        let outcomes = try w.replay(["p", "healthy"])
        if case .failed(let error) = outcomes[0].status { return (error, outcomes[1].status) }
        return (nil, outcomes[1].status)
    }

    @Test("each way of writing is refused at its event, naming what it would change", arguments: writes)
    func refused(name: String, code: String, expected: String) throws {
        let (failure, healthy) = try run(code)
        guard let failure else {
            Issue.record("\(name): not refused")
            return
        }
        #expect(failure.seq == 2, "\(name): \(failure)")
        #expect(failure.description.contains(expected), "\(name): \(failure)")
        #expect(failure.description.contains("a projection can change nothing but s") || failure.description.contains("read-only"), "\(name): \(failure)")
        #expect(healthy == .rebuilt)
    }

    static let reads: [(String, String)] = [
        ("globals and libraries", #"s.v = string.upper("a") .. math.floor(2.5) .. #Helper .. tostring(Helper.hits) .. type(_G.string)"#),
        ("a module", "s.v = money.cents(1.234) + money.rounding"),
        ("pairs over an upvalue", "local n = 0 for k, v in pairs(config.rates) do n = n + v end s.v = n"),
        ("ipairs, #, rawlen, rawget, next", "local n = 0 for i, v in ipairs(config.list) do n = n + i * v end s.v = n .. #config.list .. rawlen(config.list) .. rawget(config.list, 2) .. next(config.rates)"),
        ("table.concat and unpack of an upvalue", ##"s.v = table.concat(config.list, ",") .. select("#", table.unpack(config.list))"##),
        ("pairs over _G and a library", "local n = 0 for k in pairs(_G) do n = n + 1 end for k in pairs(string) do n = n + 1 end s.v = n > 20"),
        ("__index and __len functions that only read", #"s.v = defaults.bcd + #defaults + defaults.a"#),
        ("objects of a class made at load", "local a = Account.new(e.seq) s.v = a:get() + (getmetatable(a) == Account and 1 or 0)"),
        ("tables made in the handler stay writable", "local t = {} t.x = 1 rawset(t, 'y', 2) table.insert(t, 3) setmetatable(t, {}) s.v = t.x + t.y + t[1]"),
        ("a copy of a loaded table can be stored", "local c = {} for k, v in pairs(config.rates) do c[k] = v end s.v = c"),
    ]

    @Test("reading what was loaded works as in Lua", arguments: reads)
    func readsWork(name: String, code: String) throws {
        let (failure, _) = try run(code)
        #expect(failure == nil, "\(name): \(failure.map { "\($0)" } ?? "")")
    }

    @Test("a read-only table stored in state is refused, naming it; a string.gmatch iterator made at load is refused when it loads")
    func storedOrStateful() throws {
        let (failure, _) = try run("s.cfg = config")
        #expect(failure?.seq == 2 && failure?.description.contains(#"upvalue "config" of"#) == true && failure?.description.contains("cannot be stored in state") == true, "\(String(describing: failure))")
        let w = try Workspace()
        w.projection("g", #"local words = ("a b c"):gmatch("%a") return { on = { T = function(s, e) s.w = words() end } }"#)
        #expect { try w.load("g") } throws: { "\($0)".contains("a string.gmatch iterator made when the projection loaded") }
    }

    @Test("with a handler that writes a global, --parallel 1 and 2 no longer differ: both fail at the same event")
    func parallelAgrees() throws {
        var results: [String] = []
        for parallel in [1, 2] {
            let w = try Workspace()
            w.projection("leak", #"return { on = { T = function(s, e) rawset(_G, "seen", (seen or 0) + 1) s.order = seen end } }"#)
            try w.ingest((0..<200).map { eventLine(stream: "s\($0 % 5)", type: "T", data: #"{"n":\#($0)}"#, extra: #","id":"e\#($0)""#) })
            var options = ReplayOptions()
            options.parallel = parallel
            guard case .failed(let error)? = try w.replay(["leak"], options).first?.status else {
                Issue.record("not refused with --parallel \(parallel)")
                return
            }
            results.append("\(error.seq ?? 0) " + withoutFolder(error.message))
        }
        #expect(results[0] == results[1] && results[0].hasPrefix("1 "), "\(results)")
    }
}
