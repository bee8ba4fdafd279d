import CSQLiteSupport
import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// The json_extract a question's SQL runs (json_extract.c) against SQLite's own, on one
/// connection: the same storage class, the same value to the bit (reals by their bit
/// pattern, -0.0 included), the same subtype (seen through json_array, which embeds a
/// JSON-subtyped value as JSON and quotes any other text), and the same error.
@Suite("json_extract in questions")
struct JSONExtractTests {
    /// What one call gave: its value or its error, and json_array of it.
    private struct Outcome: Equatable, CustomStringConvertible {
        var value: String
        var wrapped: String

        var description: String { "\(value) / \(wrapped)" }
    }

    private static func describe(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return "null"
        case .int64(let i): return "int \(i)"
        case .double(let d): return "real \(String(d.bitPattern, radix: 16)) (\(d))"
        case .string(let s): return "text \(s.debugDescription)"
        case .blob(let b): return "blob \(b.count)"
        }
    }

    private static func outcome(_ db: Database, _ function: String, _ json: DatabaseValue, _ path: DatabaseValue) -> Outcome {
        func one(_ sql: String) -> String {
            do {
                return describe(try DatabaseValue.fetchOne(db, sql: sql, arguments: [json, path]) ?? .null)
            } catch let error as DatabaseError {
                return "error \(error.message ?? "")"
            } catch {
                return "error \(error)"
            }
        }
        return Outcome(value: one("SELECT \(function)(?1, ?2)"), wrapped: one("SELECT json_array(\(function)(?1, ?2))"))
    }

    /// A connection with the engine's function as `fast_extract` beside SQLite's.
    private static func connection() throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        queue.inDatabase { db in
            #expect(audit_sqlite_register_json_extract(UnsafeMutableRawPointer(db.sqliteConnection), "fast_extract") == 0)
        }
        return queue
    }

    private static func compare(_ cases: [(DatabaseValue, DatabaseValue)]) throws {
        let queue = try connection()
        queue.inDatabase { db in
            for (json, path) in cases {
                let fast = outcome(db, "fast_extract", json, path)
                let sqlite = outcome(db, "json_extract", json, path)
                #expect(fast == sqlite, "json_extract(\(json), \(path))")
            }
        }
    }

    @Test("documents that the fast scan answers, and those it hands to SQLite, answer as SQLite does")
    func fixedCases() throws {
        let documents = [
            #"{"total":342}"#, #"{"total":-0}"#, #"{"total":0}"#, #"{"total":-0.0}"#, #"{"total":0.0}"#,
            #"{"total":9223372036854775807}"#, #"{"total":9223372036854775808}"#, #"{"total":-9223372036854775808}"#,
            #"{"total":-9223372036854775809}"#, #"{"total":922337203685477580}"#, #"{"total":99999999999999999999999}"#,
            #"{"total":1.5}"#, #"{"total":0.1}"#, #"{"total":1e5}"#, #"{"total":1E+5}"#, #"{"total":1e-5}"#, #"{"total":2.5e-324}"#,
            #"{"total":1e308}"#, #"{"total":1.7976931348623157e308}"#, #"{"total":1e309}"#, #"{"total":-1e400}"#, #"{"total":1e-400}"#,
            #"{"total":123456789012345678901234567890.123456789}"#, #"{"total":0.000000000000000000000000000001}"#,
            #"{"total":"open"}"#, #"{"total":""}"#, #"{"total":"caf\u00e9"}"#, #"{"total":"a\"b"}"#, #"{"total":"é ü"}"#,
            #"{"total":true}"#, #"{"total":false}"#, #"{"total":null}"#, #"{"total":{"a":1}}"#, #"{"total":[1,2]}"#,
            #"{"total":[]}"#, #"{"total":{}}"#, #"{"a":1,"total":2,"total":3}"#, #"{"other":1}"#, #"{}"#,
            #"{"total": 5}"#, #" {"total":5}"#, #"{"total":5} "#, "{\"total\":5}\n", #"{"total":05}"#, #"{"total":1.}"#,
            #"{"total":.5}"#, #"{"total":-}"#, #"{"total":1e}"#, #"{"total":+1}"#, #"{"total":tru}"#, #"{"total":truex}"#,
            #"{"total":5"#, #"{"total":5}}"#, #"{"total":5,}"#, #"{,}"#, #"{"total"5}"#, "{\"total\":\"a\u{01}b\"}",
            #"[1,2]"#, #"5"#, #""x""#, "", "{", #"{"to\u0074al":1}"#, #"{"a":{"total":1},"total":2}"#,
            #"{"a":[[[[[[[[[[1]]]]]]]]]],"total":7}"#, "{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + ",\"total\":1}",
        ]
        let paths = ["$.total", "$.a", "$.missing", "$", #"$."total""#, "$.total.x", "$.total[0]", "$[0]", "total", "$.", "$.to-tal"]
        var cases: [(DatabaseValue, DatabaseValue)] = []
        for document in documents {
            for path in paths { cases.append((document.databaseValue, path.databaseValue)) }
        }
        // Other storage classes, of either argument.
        for (json, path) in [
            (DatabaseValue.null, "$.total".databaseValue), (5.databaseValue, "$".databaseValue), (2.5.databaseValue, "$".databaseValue),
            (Data(#"{"total":1}"#.utf8).databaseValue, "$.total".databaseValue), (#"{"total":1}"#.databaseValue, .null),
            (#"{"1":2}"#.databaseValue, 1.databaseValue),
        ] { cases.append((json, path)) }
        try Self.compare(cases)
    }

    @Test("random numbers read to the same bits as SQLite reads them (integers, reals, exponents, many digits)")
    func randomNumbers() throws {
        var random = SplitMix64(seed: 25)
        var cases: [(DatabaseValue, DatabaseValue)] = []
        let digits = Array("0123456789")
        for _ in 0..<20_000 {
            var number = Bool.random(using: &random) ? "-" : ""
            let count = Int.random(in: 1...25, using: &random)
            var significand = String(digits[Int.random(in: 1...9, using: &random)])
            for _ in 1..<count { significand.append(digits[Int.random(in: 0...9, using: &random)]) }
            if Int.random(in: 0..<10, using: &random) == 0 { significand = "0" }
            number += significand
            if Bool.random(using: &random) {
                var fraction = ""
                for _ in 0..<Int.random(in: 1...20, using: &random) { fraction.append(digits[Int.random(in: 0...9, using: &random)]) }
                number += "." + fraction
            }
            if Int.random(in: 0..<3, using: &random) == 0 {
                number += ["e", "E", "e+", "e-", "E-"][Int.random(in: 0..<5, using: &random)] + String(Int.random(in: 0...340, using: &random))
            }
            cases.append((#"{"n":1,"x":"#.appending(number).appending(#","y":"z"}"#).databaseValue, "$.x".databaseValue))
        }
        // The engine's own spelling of doubles (Double.description, number_text.c).
        for _ in 0..<5_000 {
            let value = Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF)
            let text = value.description
            cases.append((#"{"x":"#.appending(text).appending("}").databaseValue, "$.x".databaseValue))
        }
        try Self.compare(cases)
    }

    @Test("a question's answer over states equals the live table's, reals to the bit")
    func questionEqualsLiveTable() throws {
        let w = try Workspace()
        w.projection("sums", """
            return { on = { Added = function(s, e)
                s.n = (s.n or 0) + 1; s.x = (s.x or 0.0) + e.data.x; s.label = "k" .. s.n
                s.nested = { depth = s.n }
            end } }
            """)
        // Reals whose sums depend on each one's last bit.
        try w.ingest((0..<300).map { i in
            #"{"stream":"s\#(i % 40)","type":"Added","data":{"x":\#(Double(i) * 0.1 + 1e-7 * Double(i % 7))}}"#
        })
        _ = try w.replay(["sums"])
        let sql = """
            SELECT sum(json_extract(state, '$.x')), sum(json_extract(state, '$.n')), group_concat(json_extract(state, '$.label')),
                   group_concat(json_extract(state, '$.nested')), json_group_array(json_extract(state, '$.nested')) FROM sums
            """
        // SQLite's own json_extract, over a plain copy of the live table.
        var states: [[SQLValue]] = []
        try w.store.query(sql: "SELECT key, state FROM sums", header: { _ in }, row: { states.append($0) })
        let plain = try DatabaseQueue()
        let live: [[SQLValue]] = try plain.write { db in
            try db.execute(sql: "CREATE TABLE sums(key TEXT PRIMARY KEY, state TEXT)")
            for row in states {
                guard case .text(let key) = row[0], case .text(let state) = row[1] else { continue }
                try db.execute(sql: "INSERT INTO sums VALUES (?, ?)", arguments: [key, state])
            }
            return try Row.fetchAll(db, sql: sql).map { row in
                Array(row.databaseValues).map { value -> SQLValue in
                    switch value.storage {
                    case .null: return .null
                    case .int64(let i): return .integer(i)
                    case .double(let d): return .real(d)
                    case .string(let s): return .text(s)
                    case .blob(let b): return .blob(Array(b))
                    }
                }
            }
        }
        var asOf: [[SQLValue]] = []
        try w.store.query(
            sql: sql, at: TemporalSelection(asOf: try Timestamp(rfc3339: "2100-01-01T00:00:00Z")), projections: [try w.load("sums")],
            header: { _ in }, row: { asOf.append($0) })
        #expect(states.count == 40 && live.count == 1)
        #expect(asOf == live)
    }
}
