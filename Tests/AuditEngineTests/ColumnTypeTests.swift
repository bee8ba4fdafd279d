import Foundation
import Testing

@testable import AuditEngine

/// A state field that does not fit its declared column fails the projection, naming
/// the key, column, type and value, instead of storing junk in the SQL column.
@Suite("Column types")
struct ColumnTypeTests {
    static func projection(column type: String, value: String) -> String {
        """
        return {
          init = function() return { n = 0 } end,
          on = { Set = function(s, e) s.n = s.n + 1; s.v = \(value) end },
          columns = { v = "\(type)" },
        }
        """
    }

    func replay(type: String, value: String, events: Int = 1, _ options: ReplayOptions = ReplayOptions()) throws -> ReplayOutcome {
        let w = try Workspace()
        w.projection("p", Self.projection(column: type, value: value))
        try w.ingest((0..<events).map { _ in eventLine(stream: "k1", type: "Set", data: "{}") })
        return try w.replay(["p"], options)[0]
    }

    struct Fit: CustomTestStringConvertible, Sendable {
        var type: String
        var value: String
        var testDescription: String { "\(type) takes \(value)" }
    }

    @Test("values that fit their column are stored", arguments: [
        Fit(type: "text", value: #""abc""#), Fit(type: "integer", value: "7"), Fit(type: "integer", value: "30.0"),
        Fit(type: "integer", value: "true"), Fit(type: "real", value: "2.5"), Fit(type: "real", value: "2"),
        Fit(type: "numeric", value: "1.5"), Fit(type: "numeric", value: "false"), Fit(type: "text", value: "nil"),
    ])
    func fits(_ fit: Fit) throws {
        let outcome = try replay(type: fit.type, value: fit.value)
        #expect(outcome.status == .rebuilt, "\(outcome.status)")
    }

    @Test("a column holds what SQLite's json_extract reads from the state, whatever the value", arguments: [
        Fit(type: "text", value: #""plain""#), Fit(type: "text", value: #""quote \" and backslash \\ ""#),
        Fit(type: "text", value: #""line\nbreak\1""#), Fit(type: "text", value: #""été ✓""#), Fit(type: "text", value: #""""#),
        Fit(type: "integer", value: "-9007199254740993"), Fit(type: "integer", value: "true"), Fit(type: "integer", value: "false"),
        Fit(type: "real", value: "0.1"), Fit(type: "real", value: "1e300"), Fit(type: "real", value: "-2.5e-7"),
        Fit(type: "numeric", value: "12"), Fit(type: "text", value: "nil"),
    ])
    func columnValues(_ fit: Fit) throws {
        let w = try Workspace()
        w.projection("p", Self.projection(column: fit.type, value: fit.value))
        try w.ingest(["k1", "k2", #"k\"3"#].map { eventLine(stream: $0, type: "Set", data: "{}") })
        #expect(try w.replay(["p"])[0].status == .rebuilt)
        let (rows, differ) = try w.store.readTransaction { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM p")!,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM p WHERE v IS NOT json_extract(state, '$.v')")!)
        }
        #expect(rows == 3 && differ == 0, "\(fit)")
    }

    @Test("many states, written many to a statement or alone: every row, each column as json_extract reads it")
    func manyStates() throws {
        let w = try Workspace()
        // Every 7th state has a float and every 11th a string with an escape: those go
        // to the statement that extracts its columns, the rest in rows of 64.
        w.projection("p", """
            return {
              on = { Set = function(s, e)
                local i = e.data.i
                s.n = (s.n or 0) + 1
                s.r = i % 7 == 0 and i + 0.5 or i
                s.t = i % 11 == 0 and ('q"' .. i) or (i % 3 == 0 and nil or 't' .. i)
              end },
              columns = { r = "real", t = "text" },
            }
            """)
        func set(_ keys: some Sequence<Int>) -> [String] { keys.map { eventLine(stream: "k\($0)", type: "Set", data: #"{"i":\#($0)}"#) } }
        try w.ingest(set(0..<1_000))
        #expect(try w.replay(["p"])[0].status == .rebuilt)
        try w.ingest(set(stride(from: 0, to: 1_000, by: 3)))
        #expect(try w.replay(["p"])[0].status == .updated)
        let (rows, twice, differ) = try w.store.readTransaction { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM p")!,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM p WHERE json_extract(state, '$.n') = 2")!,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM p WHERE r IS NOT json_extract(state, '$.r') OR t IS NOT json_extract(state, '$.t')")!)
        }
        #expect(rows == 1_000 && twice == 334 && differ == 0)
    }

    @Test("values that do not fit fail the projection", arguments: [
        Fit(type: "real", value: #""abc""#), Fit(type: "real", value: "{ 1, 2 }"), Fit(type: "integer", value: "2.5"),
        Fit(type: "integer", value: #""7""#), Fit(type: "text", value: "42"), Fit(type: "text", value: "{ a = 1 }"),
        Fit(type: "numeric", value: #""1.5""#), Fit(type: "real", value: "true"), Fit(type: "text", value: #""a\0b""#),
        Fit(type: "text", value: #""\0""#), Fit(type: "text", value: #"("x"):rep(300) .. "\0""#),
    ])
    func mismatches(_ fit: Fit) throws {
        let outcome = try replay(type: fit.type, value: fit.value)
        guard case .failed(let error) = outcome.status else {
            Issue.record("expected a failure, got \(outcome.status)")
            return
        }
        #expect(error.projection == "p")
        #expect(error.message.contains(#"column "v" is declared \#(fit.type), but the state of key "k1" has v = "#), "\(error)")
    }

    @Test("the message names the value and its kind, and the seq when one event changed the state")
    func message() throws {
        let outcome = try replay(type: "real", value: #""abc""#)
        guard case .failed(let error) = outcome.status else {
            Issue.record("expected a failure, got \(outcome.status)")
            return
        }
        #expect(error.seq == 1)
        #expect(error.description.hasPrefix(#"projection p failed at seq 1: handler "Set" (event "#))
        #expect(error.description.contains(#"column "v" is declared real, but the state of key "k1" has v = "abc" (a string): make the value fit, or declare the column's type to match"#))
    }

    @Test("a NUL in a text column's string fails the projection, naming the key and the column, after each event or when written out; the state itself may hold one")
    func nulInText() throws {
        let w = try Workspace()
        w.projection("cv", """
            return { columns = { t = "text" }, on = {
              T = function(s, e) s.t = "a\\0b" .. e.data.n end,
              Note = function(s, e) s.note = "x\\0y" s.t = "ok" end,
            } }
            """)
        try w.ingest([eventLine(stream: "s1", type: "Note", data: #"{"n":0}"#)] + (1...4).map { eventLine(stream: "s\($0 + 1)", type: "T", data: #"{"n":\#($0)}"#) })
        let outcome = try w.replay(["cv"])[0]
        guard case .failed(let error) = outcome.status else {
            Issue.record("expected a failure, got \(outcome.status)")
            return
        }
        #expect(error.seq == 2 && error.deterministic, "\(error)")
        #expect(error.message.contains(#"column "t" is declared text, but the state of key "s2" has t = "a\u0000b1", a string with a NUL byte"#), "\(error)")
        // Large states are checked when written out: the same refusal.
        let large = try replay(type: "text", value: #""a\0b"; s.pad = s.pad or {}; for i = 1, 300 do s.pad[i] = i end"#)
        guard case .failed(let largeError) = large.status else {
            Issue.record("expected a failure, got \(large.status)")
            return
        }
        #expect(largeError.message.contains(#"column "v" is declared text, but the state of key "k1" has v = "a\u0000b""#), "\(largeError)")
        // A NUL outside the columns is kept, as the state's JSON.
        let kept = try Workspace()
        kept.projection("cv", #"return { columns = { t = "text" }, on = { T = function(s, e) s.note = "x\0y" s.t = "ok" end } }"#)
        try kept.ingest([eventLine(stream: "s1", type: "T", data: "{}")])
        #expect(try kept.replay(["cv"])[0].status == .rebuilt)
        #expect(try kept.state("cv", "s1").map(withoutFolder) == #"{"note":"x\u0000y","t":"ok"}"#)
    }

    @Test("a state too large to check after each event is checked when written out: the message names the last event that changed it; nothing of the failed checkpoint is stored")
    func lastEvent() throws {
        let w = try Workspace()
        // Over AVM_CHECK_VALUES values: checked only when it is written out.
        w.projection("p", Self.projection(column: "integer", value: "{ total = 1 }; s.pad = s.pad or {}; for i = 1, 300 do s.pad[i] = i end"))
        try w.ingest((0..<3).map { _ in eventLine(stream: "k1", type: "Set", data: "{}") })
        let outcome = try w.replay(["p"])[0]
        guard case .failed(let error) = outcome.status else {
            Issue.record("expected a failure, got \(outcome.status)")
            return
        }
        #expect(error.seq == 3)
        #expect(error.message.contains(#"has v = {"total":1} (a table)"#), "\(error)")
        #expect(error.message.contains(#"handler "Set" (event "#), "\(error)")
        #expect(outcome.position == 0, "the position the table holds: nothing was stored")
        #expect(throws: ProjectionError.self) { try w.dump("p") }
    }

    @Test("explain stops at the event whose state does not fit, naming its seq")
    func explain() throws {
        let w = try Workspace()
        w.projection("p", Self.projection(column: "text", value: "s.n"))
        try w.ingest([eventLine(stream: "k1", type: "Set", data: "{}")])
        #expect {
            try w.store.explain(try w.load("p"), key: "k1") { _ in }
        } throws: { error in
            (error as? ProjectionError)?.seq == 1 && "\(error)".contains(#"column "v" is declared text"#)
        }
    }
}
