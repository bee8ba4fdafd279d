import Foundation
import Testing

@testable import AuditEngine

/// One nesting limit per kind of JSON (DECISIONS 12): an event's data and meta nest at
/// most 128 levels, counting their own object, for every way in (ingest, append, test
/// files) and for the projections' reader alike, so that every event stored stays
/// readable; a state's tables nest at most 64 levels inside the state, for the writer
/// and for the reader of stored states.
@Suite("Nesting limits")
struct NestingLimitTests {
    /// An object nesting `levels` levels, itself included: {"a":{"a":…1…}}.
    static func nested(_ levels: Int) -> String {
        (0..<levels).reduce("1") { inner, _ in #"{"a":\#(inner)}"# }
    }

    static func nestedValue(_ levels: Int) -> JSONValue {
        (0..<levels).reduce(JSONValue.int(1)) { inner, _ in .object([JSONMember("a", inner)]) }
    }

    /// Counts the levels of e.data (and e.meta) it is given.
    static let depth = """
        return { on = { T = function(s, e)
          local function levels(t) local d = 0 while type(t) == "table" do d, t = d + 1, t.a end return d end
          s.data, s.meta = levels(e.data), levels(e.meta)
        end } }
        """

    @Test("data and meta of 128 levels are ingested and read by projections as they are; 129 are refused, naming the limit")
    func eventsAtTheLimit() throws {
        let w = try Workspace()
        w.projection("depth", Self.depth)
        try w.ingest([eventLine(stream: "k", type: "T", data: Self.nested(128), extra: #","meta":\#(Self.nested(128))"#)])
        let outcomes = try w.replay(["depth"])
        #expect(outcomes[0].status == .rebuilt, "\(outcomes[0].status)")
        #expect(try w.state("depth", "k") == #"{"data":128,"meta":128}"#)
        // explain reads events with the same reader
        var steps = 0
        try w.store.explain(try w.load("depth"), key: "k") { _ in steps += 1 }
        #expect(steps == 1)

        for extra in ["", #","meta":\#(Self.nested(129))"#] {
            let data = extra.isEmpty ? Self.nested(129) : "{}"
            let file = w.dir.jsonl("deep-\(extra.count).jsonl", [eventLine(stream: "k", type: "T", data: data, extra: extra)])
            #expect {
                try w.store.ingest(path: file)
            } throws: { error in
                "\(error)".contains("nested more than 128 levels") && !"\(error)".contains("not valid JSON")
            }
        }
        #expect(try w.store.head().seq == 2, "nothing of a refused file is appended (seq 2: the build's CodeBuilt event)")
    }

    @Test("append and test files take the same 128 levels, and refuse 129")
    func otherWaysIn() throws {
        let w = try Workspace()
        try w.store.append(NewEvent(stream: "k", type: "T", data: Self.nestedValue(128), meta: Self.nestedValue(128)))
        for (data, meta) in [(Self.nestedValue(129), nil), (.object([]), Self.nestedValue(129))] {
            #expect {
                try w.store.append(NewEvent(stream: "k", type: "T", data: data, meta: meta))
            } throws: { error in
                "\(error)".contains("is nested more than 128 levels")
            }
        }

        let good = "case deep\n" + eventLine(stream: "k", type: "T", data: Self.nested(128)) + "\nexpect k {\"data\":128,\"meta\":1}\n"
        let file = try ProjectionTestFile.parse(good, path: "depth.test")
        w.projection("depth", Self.depth)
        let result = try file.cases[0].run(try w.load("depth"), directory: w.dir.file("scratch"))
        #expect(result.problems.isEmpty, "\(result.problems)")
        let bad = "case deep\n" + eventLine(stream: "k", type: "T", data: Self.nested(129)) + "\nexpect k {}\n"
        #expect {
            try ProjectionTestFile.parse(bad, path: "depth.test")
        } throws: { error in
            "\(error)".contains("depth.test:2:") && "\(error)".contains("nested more than 128 levels")
        }
    }

    /// s.v holds `levels` tables: s.v = {{…{1}…}}.
    static func stateProjection(levels: Int) -> String {
        """
        return { on = { T = function(s, e)
          if s.v then
            local d, t = 0, s.v
            while type(t) == "table" do d, t = d + 1, t[1] end
            s.read = d
          end
          local t = 1
          for i = 1, \(levels) do t = { t } end
          s.v = t
        end } }
        """
    }

    @Test("a state's tables nest 64 levels inside it: written, and read back from the table; 65 are refused")
    func statesAtTheLimit() throws {
        let w = try Workspace()
        w.projection("deep", Self.stateProjection(levels: 64))
        try w.ingest([eventLine(stream: "k", type: "T")])
        #expect(try w.replay(["deep"])[0].status == .rebuilt)
        try w.ingest([eventLine(stream: "k", type: "T")])
        // The second replay reads the state back from the table (the VM is new).
        #expect(try w.replay(["deep"])[0].status == .updated)
        #expect(try w.state("deep", "k")?.hasPrefix(#"{"read":64,"#) == true)

        w.projection("deeper", Self.stateProjection(levels: 65))
        guard case .failed(let error) = try w.replay(["deeper"])[0].status else {
            Issue.record("65 levels were stored")
            return
        }
        #expect(error.description.contains("nested more than 64 levels"), "\(error)")
    }

    @Test("a stored state nested deeper than a state may be is refused when read back, naming the limit")
    func deepStoredState() throws {
        let w = try Workspace()
        w.projection("deep", Self.stateProjection(levels: 1))
        try w.ingest([eventLine(stream: "k", type: "T")])
        try w.replay(["deep"])
        // A state as no build writes it: 66 levels of JSON, 65 inside the state.
        let stored = "{\"v\":" + (0..<65).reduce("1") { inner, _ in "[\(inner)]" } + "}"
        _ = try sqlite3CLI(w.dir.file("audit.db"), "UPDATE deep SET state = '\(stored)' WHERE key = 'k'")
        try w.ingest([eventLine(stream: "k", type: "T")])
        guard case .failed(let error) = try w.replay(["deep"])[0].status else {
            Issue.record("a state of 65 levels inside was read back")
            return
        }
        #expect(error.description.contains("stored state is nested more than 64 levels"), "\(error)")
    }
}
