import CLuaSandbox
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import AuditEngine

/// Library functions whose results depended on the run (DECISIONS 10): pairs/next
/// order, table.sort's ties, addresses in text, the process locale.
@Suite("Library functions that give the same answer every run")
struct DeterministicLibraryTests {
    /// The state of key `k` after one event folding `body` (a handler's body).
    func state(_ body: String, limits: String = "") throws -> String? {
        let w = try Workspace()
        w.projection("p", "return { \(limits) on = { T = function(s, e) \(body) end } }")
        try w.ingest([eventLine(stream: "k", type: "T", data: #"{"x":2.25}"#)])
        if case .failed(let error)? = try w.replay(["p"]).first?.status { return "failed: \(error.message)" }
        return try w.state("p", "k").map(withoutFolder)
    }

    @Test("pairs visits numbers ascending, then strings by their bytes, then false and true, however the table was built")
    func pairsOrder() throws {
        let keys = #"{ "b", "a", "ab", "B", "é", 10, -1, 2.5, 3, 1, true, false, "10" }"#
        let result = try state("""
            local lists = {}
            for round = 1, 3 do
              local t = {}
              local order = \(keys)
              for i = 1, #order do
                local j = (i * (round + 6)) % #order + 1   -- another insertion order each round
                order[i], order[j] = order[j], order[i]
              end
              for _, k in ipairs(order) do t[k] = true end
              for i = 1, 50 do t["tmp" .. i] = 1 end
              for i = 1, 50 do t["tmp" .. i] = nil end    -- holes where keys were
              local seen = {}
              for k in pairs(t) do seen[#seen + 1] = tostring(k) end
              lists[round] = table.concat(seen, " ")
            end
            s.same = lists[1] == lists[2] and lists[2] == lists[3]
            s.order = lists[1]
            local viaNext, k = {}, next({ b = 1, a = 2, [3] = 3 })
            local t = { b = 1, a = 2, [3] = 3 }
            k = next(t)
            while k ~= nil do viaNext[#viaNext + 1] = tostring(k) k = next(t, k) end
            s.next = table.concat(viaNext, " ")
            s.empty = next({}) == nil
            """)
        #expect(result == #"{"empty":true,"next":"3 a b","order":"-1 1 2.5 3 10 10 B a ab b é false true","same":true}"#)
    }

    @Test("a list built in pairs order is the same from memory and from a state read back from the table")
    func pairsAfterReadBack() throws {
        let source = """
            return { on = { T = function(s, e)
              s.bag = s.bag or {}
              s.bag["k" .. (e.data.n * 7919 % 23)] = e.data.n
              local names = {}
              for name in pairs(s.bag) do names[#names + 1] = name end
              s.first, s.names = names[1], table.concat(names, ",")
            end } }
            """
        let events = (0..<400).map { eventLine(stream: "s\($0 % 3)", type: "T", data: #"{"n":\#($0)}"#) }
        func run(parts: Int, batch: Int, memory: Int?) throws -> [String] {
            let w = try Workspace()
            w.projection("p", source)
            return try w.replayInParts("p", events, parts: parts, .batches(batch, memory: memory))
        }
        let once = try run(parts: 1, batch: 20_000, memory: nil)
        #expect(once.count == 3 && once[0].contains(#""first":"k0""#), "\(once)")
        #expect(try run(parts: 5, batch: 3, memory: 1 << 20) == once)
    }

    @Test("pairs and next refuse a table keyed by tables or functions: their order would change every run")
    func unorderedKeys() throws {
        #expect(try state("for k in pairs({ [{}] = 1 }) do end")?.contains("pairs: a table key of type table has no fixed order") == true)
        #expect(try state("local t = { [print or function() end] = 1, a = 2 } local k = next(t) next(t, k)")?.contains("has no fixed order") == true)
        #expect(try state("s.ok = pcall(next, { a = 1 }, 'zz') == false")  == #"{"ok":true}"#)
    }

    /// Sorts records by a key with many ties, in Lua: the same text from the engine and lua5.4.
    static let tieSorts = """
        local function run()
          local out, seed = {}, 12345
          local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
          for round = 1, 40 do
            local n, list = 2 + rand(600), {}
            for i = 1, n do list[i] = { k = rand(1 + rand(8)), id = i } end
            table.sort(list, function(a, b) return a.k < b.k end)
            local ids = {}
            for i = 1, n do ids[i] = list[i].id end
            out[round] = table.concat(ids, ",")
          end
          local plain = {}
          for i = 1, 500 do plain[i] = rand(50) end
          table.sort(plain)
          out[#out + 1] = table.concat(plain, ",")
          return table.concat(out, ";")
        end
        """

    @Test("table.sort puts ties where Lua 5.4 puts them when its partitions stay balanced")
    func sortMatchesLua() throws {
        let result = try #require(try state(Self.tieSorts + " s.out = run()", limits: "limits = { instructions = 1e8 },"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/lua5.4")
        process.arguments = ["-e", Self.tieSorts + " io.write(run())"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let lua = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(result == #"{"out":"\#(lua)"}"#)
    }

    @Test("an input made to unbalance every partition (McIlroy's adversary) is sorted in O(n log n), the same way every run")
    func sortAdversary() throws {
        // The comparator fixes the values as late as it can, so that a quicksort's pivot
        // is always near the smallest: quadratic, and where Lua 5.4 picks pivots from the clock.
        let body = """
            local n = 3000
            local val, gas, solid, candidate, calls = {}, n + 1, 0, 0, 0
            local items = {}
            for i = 1, n do val[i] = gas items[i] = i end
            table.sort(items, function(x, y)
              calls = calls + 1
              if val[x] == gas and val[y] == gas then
                if x == candidate then val[x] = solid else val[y] = solid end
                solid = solid + 1
              end
              if val[x] == gas then candidate = x elseif val[y] == gas then candidate = y end
              return val[x] < val[y]
            end)
            local sorted = true
            for i = 2, n do sorted = sorted and val[items[i - 1]] <= val[items[i]] end
            s.sorted, s.calls, s.head = sorted, calls, table.concat(items, ",", 1, 20)
            """
        let limits = "limits = { instructions = 1e9 },"
        let first = try #require(try state(body, limits: limits))
        #expect(first.contains(#""sorted":true"#), "\(first)")
        guard case .int(let calls)? = try JSONParser.parse(first)["calls"] else {
            Issue.record("no count of calls: \(first)")
            return
        }
        #expect(calls < 150_000, "\(calls) comparisons for 3000 elements")
        #expect(try state(body, limits: limits) == first)
    }

    @Test("table.sort keeps Lua's errors and metamethods", arguments: [
        ("local t = {} for i = 1, 20 do t[i] = i end table.sort(t, function(a, b) return true end)", "invalid order function for sorting"),
        ("table.sort({ 3, 'x', 2 })", "attempt to compare"),
        ("table.sort({ 3, 1 }, function(a, b) error('boom') end)", "boom"),
        ("table.sort({ 3, 1 }, 5)", "bad argument #2 to 'sort' (function expected, got number)"),
        ("local mt = { __lt = function(a, b) return a.v > b.v end } local t = { setmetatable({ v = 1 }, mt), setmetatable({ v = 3 }, mt), setmetatable({ v = 2 }, mt) } table.sort(t) s.v = t[1].v .. t[2].v .. t[3].v", #"{"v":"321"}"#),
        ("local t = setmetatable({}, { __index = function(_, i) return ({ 5, 4, 6 })[i] end, __len = function() return 3 end, __newindex = function(t, i, v) rawset(t, i, v) end }) table.sort(t) s.v = t[1] .. t[2] .. t[3]", #"{"v":"456"}"#),
    ])
    func sortSemantics(code: String, expected: String) throws {
        let result = try #require(try state(code))
        #expect(result.contains(expected), "\(result)")
    }

    @Test("no path from a value to text gives an address", arguments: [
        "tostring({})", "tostring(print or tostring)", "tostring(setmetatable({}, { __name = 'Point' }))",
        "string.format('%s', {})", "string.format('%20s|%-8s', {}, pairs)", "string.format('%s', setmetatable({}, { __name = 'N' }))",
        "string.format('%s %s', 1.5, 'x')", "tostring(setmetatable({}, { __tostring = function() return 'custom' end }))",
        "select(2, pcall(error, {}))", "select(2, pcall(function() return {} .. '' end))", "select(2, pcall(function() return {} < {} end))",
        "select(2, pcall(string.rep, {}))", "select(2, pcall(string.format, '%d', {}))", "select(2, pcall(string.format, '%q', {}))",
        "select(2, pcall(table.concat, { {} }))", "select(2, pcall(load, 'return {}'))",
    ])
    func noAddresses(expression: String) throws {
        let result = try #require(try state("local v = \(expression) s.v = type(v) == 'string' and v or type(v)"))
        #expect(!result.contains("0x") && result.range(of: #"[0-9a-f]{8,}"#, options: .regularExpression) == nil, "\(result)")
    }

    @Test("NaN is spelled nan by every path from a number to text, whatever the sign bit the machine gave it; infinities inf and -inf")
    func nanText() throws {
        #expect(avm_nan_text_fixed() != 0, "liblua's number-to-text does not reach the sandbox's __snprintf_chk (nan_text.c)")
        // 0/0 has its sign bit set on x86-64 and clear on aarch64; -(0/0) the other way round.
        let result = try state("""
            local nan, neg = 0/0, -(0/0)
            s.tostring = tostring(nan) .. "|" .. tostring(neg) .. "|" .. tostring(math.sqrt(-1))
            s.concat = nan .. "|" .. neg .. "|" .. (math.huge - math.huge)
            s.format = string.format("%f|%g|%e|%a|%.3f|%5.1f|%-5g|%s|%s|%q", math.sqrt(-1), nan, neg, nan, neg, nan, neg, nan, neg, neg)
            s.upper = string.format("%G|%E|%A", nan, neg, nan)
            s.coerced = table.concat({ nan, neg }, "|") .. "|" .. string.rep(neg, 2, ",") .. "|" .. select(2, pcall(error, neg))
            s.inf = tostring(math.huge) .. "|" .. -math.huge .. "|" .. string.format("%f|%g|%q", -math.huge, math.huge, -math.huge)
            """)
        #expect(result == #"{"coerced":"nan|nan|nan,nan|nan","concat":"nan|nan|nan","format":"nan|nan|nan|nan|nan|  nan|nan  |nan|nan|(0/0)","inf":"inf|-inf|-inf|inf|-1e9999","tostring":"nan|nan|nan","upper":"NAN|NAN|NAN"}"#)
    }

    @Test("a late __mode or __close on a metatable changes nothing: setmetatable installed a copy; getmetatable gives the table back")
    func lateMetatableFields() throws {
        let weak = try state("""
            local mt = {}
            local w = setmetatable({}, mt)
            mt.__mode = "v"
            for i = 1, 50 do w[i] = { i } end
            for i = 1, 20000 do local junk = { i, tostring(i) } end
            local alive = 0
            for i = 1, 50 do if w[i] then alive = alive + 1 end end
            s.alive, s.same = alive, getmetatable(w) == mt
            """)
        #expect(weak == #"{"alive":50,"same":true}"#)
        let close = try state("""
            local mt = {}
            local obj = setmetatable({}, mt)
            mt.__close = function() s.closed = true end
            local ok, err = pcall(function() local x <close> = obj end)
            s.ok, s.err = ok, err
            """)
        #expect(close?.contains(#""ok":false"#) == true && close?.contains("non-closable value") == true && close?.contains("closed") == false, "\(String(describing: close))")
        #expect(try state("setmetatable({}, { __gc = function() end })")?.contains("__gc is not allowed") == true)
    }

    @Test(
        "numbers are written and read with a '.' whatever locale the folding thread runs in",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/localedef")
            && FileManager.default.fileExists(atPath: "/usr/share/i18n/locales/de_DE")))
    func locale() throws {
        let dir = TempDir()
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/localedef")
        make.arguments = ["-i", "de_DE", "-f", "UTF-8", dir.file("de_DE.UTF-8")]
        try make.run()
        make.waitUntilExit()
        setenv("LOCPATH", dir.path, 1)
        let german = try #require(newlocale(Int32(1) << LC_NUMERIC, "de_DE.UTF-8", nil), "localedef made no de_DE locale")
        defer { freelocale(german) }
        let folder = try Folder("""
            return { on = { T = function(s, e)
              s.a, s.b, s.c = tostring(1.5), 1.5 .. "", string.format("%.2f|%g", 1.5, 0.25)
              s.d, s.e = tonumber("1,5") == nil, tonumber("1.5")
              s.f, s.g = 2.5, e.data.x
            end } }
            """)
        let previous = uselocale(german)
        defer { uselocale(previous) }
        var buffer = [CChar](repeating: 0, count: 16)
        let n = withVaList([1.5]) { vsnprintf(&buffer, 16, "%.1f", $0) }
        let text = String(decoding: buffer[..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        try #require(text == "1,5", "the thread's locale is German: C writes 1,5")
        folder.vm.assumeNoStoredStates(true)
        try folder.apply("k", "T", #"{"x":2.25}"#)
        #expect(try folder.flushText() == [#"k {"a":"1.5","b":"1.5","c":"1.50|0.25","d":true,"e":1.5,"f":2.5,"g":2.25}"#])
    }
}
