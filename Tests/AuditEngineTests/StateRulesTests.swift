import Foundation
import Testing

@testable import AuditEngine

/// A state has one meaning whether it came from memory, the table, a snapshot or the
/// cache (DECISIONS 8): what would read back differently is refused, and refused at the
/// event that made it so, whatever the batch size or where checkpoints fall.
@Suite("What a state may hold, checked at the event")
struct StateRulesTests {
    /// The issue's tally: integer buckets 5, 6, 7.
    static let tally = """
        return { on = { T = function(s, e)
          s.c = s.c or {}
          local k = e.data.n % 3 + 5
          s.c[KEY] = (s.c[KEY] or 0) + 1
          s.total = (s.total or 0) + 1
        end } }
        """

    static func log(_ count: Int) -> [String] {
        (0..<count).map { eventLine(stream: "s\($0 % 5)", type: "T", data: #"{"n":\#($0)}"#, extra: #","id":"e\#($0)""#) }
    }

    /// Replays `source` over `events`, ingested in `parts` parts: the states, or the failure.
    func outcome(_ source: String, _ events: [String], parts: Int = 1, batch: Int = 20_000, memory: Int? = nil) throws -> [String] {
        let w = try Workspace()
        w.projection("p", source)
        return try w.replayInParts("p", events, parts: parts, .batches(batch, memory: memory))
    }

    @Test("integer keys that are not a list 1..n fail the first event that writes one, naming the key, in one pass or in two")
    func integerKeys() throws {
        let source = Self.tally.replacingOccurrences(of: "KEY", with: "k")
        let once = try outcome(source, Self.log(200))
        #expect(once == (try outcome(source, Self.log(200), parts: 2)))
        #expect(once.count == 1 && once[0].hasPrefix("failed at 1: "), "\(once)")
        #expect(once[0].contains(#"integer key 5 in a table whose integer keys are not 1..n"#) && once[0].contains("t[tostring(k)]"), "\(once)")
        #expect(once[0].contains(#"at the state of key "s0".c"#), "\(once)")
    }

    @Test("keyed by tostring(k), the same log gives the same states in one pass, in two, and with states dropped and read back")
    func stringKeys() throws {
        let source = Self.tally.replacingOccurrences(of: "KEY", with: "tostring(k)")
        let once = try outcome(source, Self.log(200))
        #expect(once.first == #"s0 {"c":{"5":14,"6":13,"7":13},"total":40}"#)
        #expect(try outcome(source, Self.log(200), parts: 2) == once)
        #expect(try outcome(source, Self.log(200), parts: 3, batch: 7, memory: 1 << 20) == once)
    }

    @Test("lists 1..n stay lists: the same after a restart as in memory")
    func lists() throws {
        let source = """
            return { on = { T = function(s, e)
              s.items = s.items or {}
              s.items[#s.items + 1] = e.data.n
              if #s.items > 4 then table.remove(s.items, 1) end
              s.last = s.items[#s.items]
            end } }
            """
        let once = try outcome(source, Self.log(100))
        #expect(once.first == #"s0 {"items":[80,85,90,95],"last":95}"#)
        #expect(try outcome(source, Self.log(100), parts: 4, batch: 3) == once)
    }

    static let transient = """
        return { on = { T = function(s, e)
          PAD
          if e.data.n == 7 then s.tmp = function() end end
          if e.data.n == 12 then s.tmp = nil end
          s.n = (s.n or 0) + 1
        end } }
        """

    @Test("a value that cannot be stored fails its event, also when a later event removes it before any checkpoint", arguments: [1, 3, 20_000])
    func transient(batch: Int) throws {
        let result = try outcome(Self.transient.replacingOccurrences(of: "PAD", with: ""), Self.log(20), batch: batch)
        #expect(result.count == 1 && result[0].hasPrefix("failed at 8: "), "\(result)")
        #expect(result[0].contains(#"a function cannot be stored in state (only tables, strings, numbers and booleans) at the state of key "s2".tmp"#), "\(result)")
    }

    @Test("the documented exception: a state over 256 values is checked when written out, so a value gone by then passes")
    func largeStates() throws {
        let source = Self.transient.replacingOccurrences(of: "PAD", with: "s.pad = s.pad or {} for i = 1, 300 do s.pad[i] = i end")
        #expect(try outcome(source, Self.log(20)).count == 5)  // one checkpoint, after the value was gone
        let each = try outcome(source, Self.log(20), batch: 1)  // a checkpoint after every event
        #expect(each.count == 1 && each[0].contains(#"a function cannot be stored in state"#), "\(each)")
    }

    @Test("a key that cannot be stored as text and read back is refused at its event", arguments: [
        (#"return "k\0" .. e.data.n % 2"#, #"the key function returned "k\x000", which has a NUL byte"#),
        (#"return e.data.n % 2 == 0 and "\xff\xfe" or "ok""#, #"the key function returned "\xFF\xFE", which is not valid UTF-8"#),
    ])
    func keys(function: String, expected: String) throws {
        let result = try outcome("return { key = function(e) \(function) end, on = { T = function(s, e) s.n = 1 end } }", Self.log(4))
        #expect(result.count == 1 && result[0].hasPrefix("failed at 1: ") && result[0].contains(expected), "\(result)")
    }
}
