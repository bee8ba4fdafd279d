import CLuaSandbox
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import AuditEngine

/// One VM folding events by hand, to pin down what the fold promises: which states a
/// flush writes and in what order, what evict forgets, and when a state is asked for.
final class Folder {
    let vm: LuaVM

    init(_ source: String, memoryMB: Int = 64) throws {
        vm = try LuaVM(limits: LuaLimits(memoryBytes: memoryMB << 20, instructionsPerEvent: 1_000_000))
        vm.setEventFields(UInt32(AVM_FIELD_SEQ | AVM_FIELD_STREAM | AVM_FIELD_TYPE | AVM_FIELD_DATA))
        try vm.load(source: source, chunkName: "test.lua")
    }

    /// Folds one event; the outcome as "applied", "skipped" or "need <key>".
    @discardableResult
    func apply(stream: [UInt8], type: [UInt8], data: String = "{}", seq: Int64 = 1) throws -> String {
        var streamZ = stream + [0]
        var typeBytes = type
        var dataBytes = Array(data.utf8)
        return try streamZ.withUnsafeMutableBufferPointer { s in
            try typeBytes.withUnsafeMutableBufferPointer { t in
                try dataBytes.withUnsafeMutableBufferPointer { d in
                    var e = avm_event()
                    e.seq = seq
                    e.stream = UnsafeRawPointer(s.baseAddress!).assumingMemoryBound(to: CChar.self)
                    e.stream_len = stream.count
                    e.type = UnsafeRawPointer(t.baseAddress ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
                    e.type_len = type.count
                    e.data = UnsafeRawPointer(d.baseAddress!).assumingMemoryBound(to: CChar.self)
                    e.data_len = data.utf8.count
                    switch try vm.apply(&e) {
                    case .applied: return "applied"
                    case .skipped: return "skipped"
                    case .needsState(let key): return "need \(key)"
                    }
                }
            }
        }
    }

    @discardableResult
    func apply(_ stream: String, _ type: String, _ data: String = "{}", seq: Int64 = 1) throws -> String {
        try apply(stream: Array(stream.utf8), type: Array(type.utf8), data: data, seq: seq)
    }

    /// Flushes and decodes the records: key bytes and JSON, in key order, as a
    /// checkpoint reads them (a VM writes them in slot order; `StateRun` sorts them).
    func flush() throws -> [(key: [UInt8], json: String)] {
        let flushed = try vm.flush()
        var records: [(key: [UInt8], json: String)] = []
        StateRun(flushed).forEach { key, state in records.append((Array(key), String(decoding: state, as: UTF8.self))) }
        #expect(records.count == flushed.count)
        return records
    }

    /// The flushed records as "key json" strings.
    func flushText() throws -> [String] {
        try flush().map { String(decoding: $0.key, as: UTF8.self) + " " + $0.json }
    }
}

private let counter = """
    return {
      init = function(key) return { n = 0, key = key } end,
      on = { T = function(s, e) s.n = s.n + 1 end },
    }
    """

@Suite("Folding states: keys, flushes and eviction")
struct FoldStatesTests {
    @Test("many keys: every state is written once, in key order, and survives evict by being provided again")
    func manyKeysAcrossEvict() throws {
        let f = try Folder(counter)
        f.vm.assumeNoStoredStates(true)
        let keys = (0..<5000).map { "k\(($0 * 7919) % 5000)" }
        for key in keys { try f.apply(key, "T") }
        for key in keys.prefix(100) { try f.apply(key, "T") }
        let records = try f.flushText()
        #expect(records.count == 5000)
        #expect(records == keys.sorted().map { key in
            let n = keys.prefix(100).contains(key) ? 2 : 1
            return #"\#(key) {"key":"\#(key)","n":\#(n)}"#
        })
        #expect(f.vm.keysCreated == 5000)

        let before = f.vm.memoryUsed
        try f.vm.evict()
        #expect(f.vm.memoryUsed < before - 5000 * 40, "evict releases the states and their keys")
        #expect(try f.vm.stateJSON(key: "k1") == nil)
        #expect(try f.flush().isEmpty)

        // Every key must be provided again, from what was stored.
        for (i, key) in keys.enumerated() where i % 50 == 0 {
            #expect(try f.apply(key, "T") == "need \(key)")
            try f.vm.provideState(key: key, json: #"{"n":40,"key":"\#(key)"}"#)
            #expect(try f.apply(key, "T") == "applied")
            #expect(f.vm.lastKey == key)
        }
        try f.vm.provideState(key: "fresh", json: nil)
        #expect(try f.apply("fresh", "T") == "applied")
        #expect(f.vm.keysCreated == 5001)
        let again = try f.flushText()
        let changed = keys.enumerated().filter { $0.offset % 50 == 0 }.map(\.element)
        #expect(again == (changed.map { #"\#($0) {"key":"\#($0)","n":41}"# } + [#"fresh {"key":"fresh","n":1}"#]).sorted())
    }

    @Test("a flush writes only what changed since the last one; the first flush of a new table writes every state")
    func dirtyAcrossFlushes() throws {
        let f = try Folder(counter)
        try f.vm.provideState(key: "provided", json: #"{"n":7}"#)
        // A state in memory already: changes are tracked from the start.
        f.vm.assumeNoStoredStates(true)
        try f.apply("a", "T")
        try f.apply("b", "T")
        try f.apply("c", "Unhandled")
        // assumeNoStoredStates with nothing in memory: everything in memory is new.
        let f2 = try Folder(counter)
        f2.vm.assumeNoStoredStates(true)
        try f2.apply("a", "T")
        try f2.vm.provideState(key: "provided", json: #"{"n":7}"#)
        #expect(try f2.flushText() == [#"a {"key":"a","n":1}"#, #"provided {"n":7}"#])
        #expect(try f2.flush().isEmpty)

        #expect(try f.flushText() == [#"a {"key":"a","n":1}"#, #"b {"key":"b","n":1}"#])
        #expect(try f.flush().isEmpty)
        try f.apply("b", "T")
        try f.apply("provided", "T")
        try f.apply("b", "T")
        #expect(try f.flushText() == [#"b {"key":"b","n":3}"#, #"provided {"n":8}"#])
        #expect(try f.flush().isEmpty)
        #expect(try f.vm.stateJSON(key: "a") == #"{"key":"a","n":1}"#)
    }

    @Test("a state replaced before the flush: the flush writes the state as it was changed")
    func providedOverChanged() throws {
        let f = try Folder(counter)
        f.vm.assumeNoStoredStates(false)
        #expect(try f.apply("a", "T") == "need a")
        #expect(f.vm.keysCreated == 0)
        try f.vm.provideState(key: "a", json: #"{"n":1}"#)
        try f.apply("a", "T")
        try f.vm.provideState(key: "a", json: #"{"n":100}"#)
        #expect(try f.vm.stateJSON(key: "a") == #"{"n":100}"#)
        #expect(try f.flushText() == [#"a {"n":2}"#])
        try f.apply("a", "T")
        #expect(try f.flushText() == [#"a {"n":101}"#])
    }

    @Test("evict before a flush: the changes are still written, and the keys must be provided again")
    func evictBeforeFlush() throws {
        let f = try Folder(counter)
        f.vm.assumeNoStoredStates(false)
        for key in ["x", "y", "z"] {
            #expect(try f.apply(key, "T") == "need \(key)")
            try f.vm.provideState(key: key, json: #"{"n":10}"#)
            try f.apply(key, "T")
        }
        _ = try f.flush()
        try f.apply("x", "T")
        try f.apply("y", "T")
        try f.vm.evict()
        #expect(try f.apply("y", "T") == "need y")
        #expect(try f.apply("z", "T") == "need z")
        try f.vm.provideState(key: "y", json: #"{"n":50}"#)
        #expect(try f.vm.stateJSON(key: "x") == nil)
        #expect(try f.flushText() == [#"x {"n":12}"#, #"y {"n":12}"#])
        try f.vm.evict()
        try f.vm.provideState(key: "y", json: #"{"n":50}"#)
        try f.apply("y", "T")
        try f.vm.evict()
        try f.vm.evict()
        #expect(try f.flushText() == [#"y {"n":51}"#])
    }

    @Test("evict with changes in several chunks of states: each change is written once, and the rest are asked for")
    func evictAcrossChunks() throws {
        let f = try Folder(counter)
        f.vm.assumeNoStoredStates(true)
        let keys = (0..<3000).map { "k\(($0 * 7919) % 3000)" }  // slots in three chunks of 1,024
        for key in keys { try f.apply(key, "T") }
        _ = try f.flush()
        let changed = keys.enumerated().filter { $0.offset % 3 != 0 }.map(\.element)
        for key in changed { try f.apply(key, "T") }
        try f.vm.evict()
        f.vm.assumeNoStoredStates(false)
        #expect(try f.apply(keys[0], "T") == "need \(keys[0])")
        #expect(try f.flushText() == changed.sorted().map { #"\#($0) {"key":"\#($0)","n":2}"# })
        #expect(try f.flush().isEmpty)
    }

    static let orderCases: [(String, [[UInt8]])] = [
        ("long shared prefixes", [
            "order-0000000000000000000-b", "order-0000000000000000000-a", "order-0000000000000000000", "order-00000000000000000000",
            "order-0000000000", "order-000000000z", "order-0000000000000000000-a-longer-still", "order-1",
        ].map { Array($0.utf8) }),
        ("non-ASCII and high bytes", ["z", "é", "e", "日本", "Z", "ünïcödé-key-that-is-long", "ü"].map { Array($0.utf8) }),
        ("control bytes", [[0x61], [0x61, 0x01], [0x61, 0x01, 0x62], [0x61, 0x62], [0x01], [], [0x61, 0x01, 0x01]]),
        ("sixteen-byte boundaries", [
            Array("0123456789abcdef".utf8), Array("0123456789abcde".utf8), Array("0123456789abcdef0".utf8),
            Array("0123456789abcdef\u{1}".utf8), Array("0123456789abcdeg".utf8),
        ]),
        ("twenty-byte boundaries", [
            "0123456789abcdefghij", "0123456789abcdefghi", "0123456789abcdefghijk", "0123456789abcdefghijl",
            "0123456789abcdefghik", "0123456789abcdefghijk0123456789",
        ].map { Array($0.utf8) }),
    ]

    @Test("records come out in bytewise key order, keys byte for byte", arguments: orderCases)
    func flushOrder(name: String, keys: [[UInt8]]) throws {
        // The key is the bytes of e.data.k (JSON escapes), so it may hold any byte a key
        // may hold (not NUL: see StateRulesTests).
        let f = try Folder("""
            return {
              key = function(e) return e.data.k end,
              on = { T = function(s, e) s.n = (s.n or 0) + 1 end },
            }
            """)
        f.vm.assumeNoStoredStates(true)
        func json(_ key: [UInt8]) -> String {
            let escaped = String(decoding: key, as: UTF8.self).unicodeScalars.map {
                $0.value < 0x20 ? String(format: "\\u%04x", $0.value) : String($0)
            }.joined()
            return #"{"k":"\#(escaped)"}"#
        }
        for key in keys + keys.prefix(2) { #expect(try f.apply("s", "T", json(key)) == "applied") }
        let records = try f.flush()
        #expect(records.map(\.key) == keys.sorted { $0.lexicographicallyPrecedes($1) }, "\(name)")
        #expect(records.map(\.json) == keys.sorted { $0.lexicographicallyPrecedes($1) }.map { keys.prefix(2).contains($0) ? #"{"n":2}"# : #"{"n":1}"# })
        try f.vm.evict()
        #expect(try f.flush().isEmpty)
    }

    @Test("on this Lua, a VM finds tables where it expects them, and so fetches states ahead")
    func prefetchesStates() throws {
        // If a Lua update moved them, folding stays right but loses its look-ahead
        // (a fifth of a replay's speed): this says so.
        let f = try Folder("return { on = {} }")
        #expect(f.vm.prefetchesStates)
    }

    @Test("on this Lua, a VM checks each event's state reading tables directly, and reads upvalue assignments from bytecode")
    func checksDirectly() throws {
        // If a Lua update changed them, the checks stay right but cost more per event.
        let f = try Folder("return { on = {} }")
        #expect(f.vm.checksDirectly)
    }

    @Test("states of many shapes, alike and not, in any insertion order, are written with their keys sorted")
    func stateShapes() throws {
        // Fields set in the order the event lists them, some removed; names short
        // (interned by Lua) and long (not), one a declared column. A VM caches the sort
        // of the last state's keys: whatever it caches, each state is written canonically.
        let f = try Folder("""
            return {
              on = { T = function(s, e)
                for i, k in ipairs(e.data.set) do s[k] = i end
                for _, k in ipairs(e.data.unset) do s[k] = nil end
              end },
              columns = { b = "integer" },
            }
            """)
        try f.vm.setColumns([(name: "b", type: "integer")])
        f.vm.assumeNoStoredStates(true)
        let long = String(repeating: "long-name-", count: 5)
        let names = ["a", "b", "ab", "B", "é", "_", long, long + "2", "z"]
        var random = SplitMix64(seed: 7)
        var expected: [String: [String: Int]] = [:]
        for round in 0..<3 {
            for n in 0..<200 {
                let key = "k\(n % 150)"
                // Often the same few shapes, as a projection's states are; sometimes any.
                let pool = n % 5 == 0 ? names.shuffled(using: &random) : Array(names.prefix(3 + n % 2))
                let set = Array(pool.prefix(Int.random(in: 1...pool.count, using: &random)))
                let unset = round > 0 && n % 7 == 0 ? [set[0]] : []
                let quoted = { (list: [String]) in "[" + list.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
                try f.apply(key, "T", #"{"set":\#(quoted(set)),"unset":\#(quoted(unset))}"#)
                var state = expected[key] ?? [:]
                for (i, name) in set.enumerated() { state[name] = i + 1 }
                for name in unset { state[name] = nil }
                expected[key] = state
            }
            for (key, json) in try f.flush() {
                let state = expected[String(decoding: key, as: UTF8.self)]!
                let members = state.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                    .map { "\"\($0)\":\(state[$0]!)" }
                #expect(json == "{" + members.joined(separator: ",") + "}", "round \(round)")
            }
        }
    }

    @Test("a state whose keys are the cached shape's still has its declared columns checked")
    func shapeKeepsColumnChecks() throws {
        // States too large to be checked after each event (state_check.c): the flush checks.
        let f = try Folder("""
            return { on = { T = function(s, e)
              s.c = e.data.c; s.d = 1; s.pad = {}
              for i = 1, 300 do s.pad[i] = i end
            end }, columns = { c = "integer" } }
            """)
        try f.vm.setColumns([(name: "c", type: "integer")])
        f.vm.assumeNoStoredStates(true)
        for n in 0..<10 { try f.apply("k\(n)", "T", #"{"c":\#(n)}"#) }
        #expect(try f.flush().count == 10)
        try f.apply("k3", "T", #"{"c":"x"}"#)
        #expect(throws: LuaError.self) { try f.flush() }
        do {
            _ = try f.vm.flush()
        } catch let error as LuaError {
            #expect(error.message.contains(#"column "c" is declared integer, but the state of key "k3" has c = "x" (a string)"#), "\(error.message)")
        }
    }

    @Test("a backlog of flushes gives every key once, in key order, with its newest state, holding few runs", arguments: [1, 2, 4])
    func backlogMerge(mergeAt: Int) throws {
        let f = try Folder("return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }")
        f.vm.assumeNoStoredStates(true)
        func flushed(_ streams: [String]) throws -> StateRun {
            for stream in streams { try f.apply(stream, "T") }
            return StateRun(try f.vm.flush())
        }
        let backlog = TableBacklog(mergeAt: mergeAt)
        #expect(backlog.isEmpty)
        backlog.add([try flushed(["c", "a", "b"])])
        backlog.add([try flushed(["b", "d"]), try flushed(["b"])])
        for _ in 0..<3 {
            backlog.add([try flushed(["a", "e"])])
            #expect(backlog.runCount <= mergeAt)
        }
        #expect(!backlog.isEmpty)
        var seen: [String] = []
        StateRun.merged(backlog.take()).forEach { key, state in
            seen.append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
        }
        #expect(seen == [#"a {"n":4}"#, #"b {"n":3}"#, #"c {"n":1}"#, #"d {"n":1}"#, #"e {"n":3}"#])
        #expect(backlog.isEmpty && backlog.byteCount == 0)
    }

    static let patterns = ["order-*", "ord?r-*", "*", "order-1*", "[o]rder-*", #"order\-*"#, "order-*-x", "*-1", "", "ordé-*", "order-"]
    static let streams = ["order-1", "order-", "order", "order-12", "xorder-1", "order-1/2", ".order-1", "ordér-1", "ordé-1", "", "order-1-x", "Order-1"]

    @Test("a streams glob selects exactly the streams fnmatch matches", arguments: patterns)
    func streamsGlob(glob: String) throws {
        let f = try Folder("""
            return { streams = "\(glob.replacingOccurrences(of: "\\", with: "\\\\"))", on = { T = function(s, e) s.n = 1 end } }
            """)
        f.vm.assumeNoStoredStates(true)
        for stream in Self.streams {
            let expected = fnmatch(glob, stream, 0) == 0 ? "applied" : "skipped"
            #expect(try f.apply(stream, "T") == expected, "glob \(glob), stream \(stream)")
        }
    }

    @Test("event types select their handler by their exact bytes")
    func handlerByType() throws {
        let f = try Folder("""
            return {
              on = {
                Order = function(s, e) s.order = (s.order or 0) + 1 end,
                OrderPlaced = function(s, e) s.placed = (s.placed or 0) + 1 end,
                ["A\\0B"] = function(s, e) s.nul = true end,
                ["Größe"] = function(s, e) s.size = true end,
              },
            }
            """)
        f.vm.assumeNoStoredStates(true)
        #expect(try f.apply(stream: Array("s".utf8), type: Array("Order".utf8)) == "applied")
        #expect(try f.apply(stream: Array("s".utf8), type: Array("OrderPlaced".utf8)) == "applied")
        #expect(try f.apply(stream: Array("s".utf8), type: Array("OrderPlace".utf8)) == "skipped")
        #expect(try f.apply(stream: Array("s".utf8), type: Array("OrderPlacedX".utf8)) == "skipped")
        #expect(try f.apply(stream: Array("s".utf8), type: []) == "skipped")
        #expect(try f.apply(stream: Array("s".utf8), type: [0x41]) == "skipped")
        #expect(try f.apply(stream: Array("s".utf8), type: [0x41, 0x00, 0x42]) == "applied")
        #expect(try f.apply(stream: Array("s".utf8), type: Array("Größe".utf8)) == "applied")
        #expect(try f.vm.stateJSON(key: "s") == #"{"nul":true,"order":1,"placed":1,"size":true}"#)
    }

    @Test("a key function: integers become decimal keys, nil skips, other values fail")
    func keyFunction() throws {
        let f = try Folder("""
            return {
              init = function(key) return { key = key, kind = type(key) } end,
              key = function(e) return e.data.k end,
              on = { T = function(s, e) s.n = (s.n or 0) + 1 end },
            }
            """)
        f.vm.assumeNoStoredStates(true)
        #expect(try f.apply("s", "T", #"{"k":42}"#) == "applied")
        #expect(f.vm.lastKey == "42")
        #expect(try f.apply("s", "T", #"{"k":-7}"#) == "applied")
        #expect(try f.apply("s", "T", #"{"k":"42"}"#) == "applied")
        #expect(try f.apply("s", "T", #"{"k":9223372036854775807}"#) == "applied")
        #expect(f.vm.lastKey == "9223372036854775807")
        #expect(try f.apply("s", "T", #"{}"#) == "skipped")
        #expect(f.vm.keysCreated == 3)
        #expect(throws: LuaError.self) { try f.apply("s", "T", #"{"k":true}"#) }
        #expect(try f.flushText() == [
            #"-7 {"key":"-7","kind":"string","n":1}"#,
            #"42 {"key":"42","kind":"string","n":2}"#,
            #"9223372036854775807 {"key":"9223372036854775807","kind":"string","n":1}"#,
        ])
        f.vm.assumeNoStoredStates(false)
        try f.vm.evict()
        #expect(try f.apply("s", "T", #"{"k":42}"#) == "need 42")
    }

    @Test("key global: one state under the key \"global\"; merge folds partial states into it")
    func globalAndMerge() throws {
        let source = """
            return {
              key = "global",
              init = function() return { n = 0 } end,
              on = { T = function(s, e) s.n = s.n + 1 end },
              merge = function(a, b) return { n = a.n + b.n } end,
            }
            """
        let f = try Folder(source)
        f.vm.assumeNoStoredStates(true)
        try f.apply("a", "T")
        try f.apply("b", "T")
        #expect(f.vm.lastKey == "global")
        #expect(try f.flushText() == [#"global {"n":2}"#])
        try f.vm.merge(key: "global", partial: #"{"n":5}"#)
        #expect(try f.vm.stateJSON(key: "global") == #"{"n":7}"#)
        #expect(try f.flushText() == [#"global {"n":7}"#])
        try f.vm.evict()
        // Merging into a key not in memory starts it from init.
        try f.vm.merge(key: "global", partial: #"{"n":5}"#)
        #expect(try f.flushText() == [#"global {"n":5}"#])
        try f.vm.merge(key: "other", partial: #"{"n":1}"#)
        #expect(try f.flushText() == [#"other {"n":1}"#])
        #expect(throws: LuaError.self) { try f.vm.merge(key: "global", partial: #"{"n":"x"}"#) }
    }

    @Test("keys past the memory limit fail the event with the limit's error, and the VM stays usable")
    func memoryLimitOnKeys() throws {
        let f = try Folder("""
            return {
              key = function(e) return string.rep(e.data.k, 2000) .. e.seq end,
              on = { T = function(s, e) end },
            }
            """, memoryMB: 8)
        f.vm.assumeNoStoredStates(true)
        var failure: String?
        for seq in 1...20000 {
            do {
                try f.apply("s", "T", #"{"k":"abcd"}"#, seq: Int64(seq))
            } catch {
                failure = "\(error)"
                break
            }
        }
        #expect(failure?.contains("memory limit of 8 MB exceeded") == true, "\(failure ?? "no failure")")
        try f.vm.evict()
        #expect(f.vm.memoryUsed < 4 << 20)
        f.vm.assumeNoStoredStates(true)
        #expect(try f.apply("s", "T", #"{"k":"x"}"#, seq: 1) == "applied")
    }

    @Test("states past the pool's first 16 MB, on chunks faulted in ahead: all written; past the limit, the limit's error")
    func statesOnLargeChunks() throws {
        // Small tables come from the VM's pool; past 16 MB its chunks come from depot.c.
        let f = try Folder(counter, memoryMB: 96)
        f.vm.assumeNoStoredStates(true)
        let keys = (0..<150_000).map { "key-\($0)" }
        for key in keys { try f.apply(key, "T") }
        for key in keys.prefix(1000) { try f.apply(key, "T") }
        #expect(f.vm.memoryUsed > 24 << 20, "\(f.vm.memoryUsed) bytes: not past the first chunks")
        let records = try f.flushText()
        #expect(records.count == keys.count)
        #expect(records.filter { $0.hasSuffix(#""n":2}"#) }.count == 1000)

        let bomb = try Folder("""
            return { on = { T = function(s, e)
              local kept = s.kept or {}
              s.kept = kept
              for i = 1, 20000 do kept[#kept + 1] = { i } end
            end } }
            """, memoryMB: 40)
        bomb.vm.assumeNoStoredStates(true)
        var message = "no error"
        for seq in 1...100 {  // about 2 MB more each
            do { try bomb.apply("s", "T", seq: Int64(seq)) } catch { message = "\(error)"; break }
        }
        #expect(message.contains("memory limit of 40 MB exceeded"), "\(message)")
        #expect(bomb.vm.memoryUsed <= 40 << 20)
    }
}
