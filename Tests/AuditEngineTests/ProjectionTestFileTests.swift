import Foundation
import Testing

@testable import AuditEngine

/// Projection test files: reading the format, and running cases through the real replay.
@Suite("Projection test files")
struct ProjectionTestFileTests {
    static let orders = """
        # comment
        case an order adds up
        {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
          {"stream":"order-1","type":"ItemAdded","data":{"qty":2,"price":5}}
        expect order-1 {"customer":"c1","status":"open","total":35}

        case only some fields
        {"stream":"order-2","type":"OrderPlaced","data":{"customer":"c2","amount":1},"occurred_at":"2024-06-30T14:00:00+02:00"}
        {"stream":"order-2","type":"OrderCancelled","id":"x"}
        expect order-2 has {"status":"cancelled"}
        expect "other key" absent

        case fails
        {"stream":"order-3","type":"ItemAdded","data":{"qty":2}}
        expect error at 1 "arithmetic on a nil value"
        """

    func run(_ testFile: String, projection source: String = orderTotals) throws -> [ProjectionTestResult] {
        let w = try Workspace()
        w.projection("order_totals", source)
        let file = try ProjectionTestFile.parse(testFile, path: "projections/order_totals.test")
        let projection = try w.load("order_totals")
        return try file.cases.map { try $0.run(projection, directory: w.dir.path) }
    }

    @Test("a file reads into cases: events with seq order, default times and ids, and expectations with their lines")
    func parses() throws {
        let file = try ProjectionTestFile.parse(Self.orders, path: "projections/order_totals.test")
        #expect(file.projection == "order_totals")
        #expect(file.cases.map(\.name) == ["an order adds up", "only some fields", "fails"])
        #expect(file.cases.map(\.line) == [2, 7, 13])
        let first = file.cases[0]
        #expect(first.events.map(\.line) == [3, 4])
        #expect(first.events.map(\.event.id) == ["event-1", "event-2"])
        #expect(first.events.map { $0.event.occurredAt?.description } == ["2024-01-01T00:00:00.000Z", "2024-01-01T00:01:00.000Z"])
        #expect(first.events[1].event.data == .object([JSONMember("qty", .int(2)), JSONMember("price", .int(5))]))
        let second = file.cases[1]
        #expect(second.events.map { $0.event.occurredAt?.description } == ["2024-06-30T12:00:00.000Z", "2024-06-30T12:01:00.000Z"])
        #expect(second.events.map(\.event.id) == ["event-1", "x"])
        #expect(second.expectations.map(\.kind) == [.includes(key: "order-2", .object([JSONMember("status", .string("cancelled"))])), .absent(key: "other key")])
        #expect(file.cases[2].expectations.map(\.kind) == [.failure(atEvent: 1, containing: "arithmetic on a nil value")])
        #expect(ProjectionTestFile.projectionName(ofPath: "projections/fine_balances.payments.test") == "fine_balances")
    }

    @Test("a file saved with CRLF line endings reads the same")
    func crlf() throws {
        let unix = try ProjectionTestFile.parse(Self.orders, path: "t.test")
        let windows = try ProjectionTestFile.parse(Self.orders.replacingOccurrences(of: "\n", with: "\r\n"), path: "t.test")
        #expect(windows.cases.map(\.name) == unix.cases.map(\.name))
        #expect(windows.cases.map(\.expectations.count) == unix.cases.map(\.expectations.count))
    }

    struct Malformed: CustomTestStringConvertible, Sendable {
        var text: String
        var problem: String
        var testDescription: String { problem }
    }

    @Test("a malformed file names each bad line", arguments: [
        Malformed(text: "{\"stream\":\"a\",\"type\":\"T\"}\n", problem: "1: this comes before the first case"),
        Malformed(text: "case a\n{\"stream\":\"a\"}\nexpect a absent\n", problem: #"2: missing "type""#),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\",\"seq\":3}\nexpect a absent\n", problem: #"2: "seq" is assigned by the store"#),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\",\"data\":[1]}\nexpect a absent\n", problem: #"2: "data" must be a JSON object"#),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\",\"occurred_at\":\"yesterday\"}\nexpect a absent\n", problem: #"2: "occurred_at": "#),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\"\nexpect a absent\n", problem: "2: an event must be one JSON object on one line"),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\"}\n", problem: "1: case \"a\" has no `expect` line"),
        Malformed(text: "case a\nexpect a {\"x\":}\n", problem: "2: the expected state must be JSON on one line"),
        Malformed(text: "case a\nexpect a maybe\n", problem: "2: after `expect a` give its state"),
        Malformed(text: "case a\nexpect a has [1]\n", problem: "2: `has` takes a JSON object"),
        Malformed(text: "case a\nexpect a [1]\n", problem: "2: a state is a JSON object ({…}), not an array"),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\",\"id\":\"x\"}\n{\"stream\":\"b\",\"type\":\"T\",\"id\":\"x\"}\nexpect a absent\n", problem: "3: the id \"x\" is already used at line 2 of this case"),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\"}\nexpect error at 2 \"x\"\n", problem: "3: `expect error at 2`: the case has 1 event(s)"),
        Malformed(text: "case a\nexpect error oops\n", problem: "2: the error text must be a JSON string"),
        Malformed(text: "case a\n{\"stream\":\"a\",\"type\":\"T\"}\nexpect error \"x\"\nexpect a absent\n", problem: "1: case \"a\" expects an error and states"),
        Malformed(text: "case a\nexpect a absent\nexpect a {}\n", problem: "3: key \"a\" is already expected at line 2"),
        Malformed(text: "case a\nexpect a absent\n{\"stream\":\"a\",\"type\":\"T\"}\n", problem: "3: events come before the case's `expect` lines"),
        Malformed(text: "case a\nexpect a absent\ncase a\nexpect b absent\n", problem: "3: a case named \"a\" is already at line 1"),
        Malformed(text: "case\nexpect a absent\n", problem: "1: a case needs a name"),
        Malformed(text: "given a\n", problem: "1: this comes before the first case"),
        Malformed(text: "# nothing\n", problem: "1: no test cases"),
    ])
    func malformed(_ example: Malformed) throws {
        #expect {
            try ProjectionTestFile.parse(example.text, path: "t.test")
        } throws: { error in
            let description = "\(error)"
            return (error as? TestFileError)?.category == .invalidInput && description.contains("t.test:" + example.problem)
        }
    }

    @Test("every bad line of a file is reported, in line order")
    func allProblems() throws {
        let text = "case a\n{\"stream\":1,\"type\":\"T\"}\nexpect a maybe\nwhat\ncase b\n{\"stream\":\"b\",\"type\":\"T\"}\n"
        #expect {
            try ProjectionTestFile.parse(text, path: "t.test")
        } throws: { error in
            (error as? TestFileError)?.problems.map(\.line) == [2, 3, 4, 5]
        }
    }

    @Test("cases that hold pass: exact states, some fields, absent keys, an expected error at its event")
    func passing() throws {
        let results = try run(Self.orders)
        #expect(results.map(\.passed) == [true, true, true], "\(results.map(\.problems))")
    }

    @Test("a failing case says which path differs, with expected and actual values and the expect line")
    func failingDiff() throws {
        let text = """
            case wrong
            {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
            {"stream":"order-1","type":"ItemAdded","data":{"qty":1,"price":5}}
            expect order-1 {"customer":"c2","total":30.0,"status":"open","note":"x"}
            expect order-9 has {"total":1}
            """
        let result = try #require(try run(text).first)
        #expect(!result.passed)
        #expect(result.problems.map(\.line) == [4, 4, 4, 5])
        #expect(result.problems.map(\.message) == [
            #"order-1.customer: expected "c2", got "c1""#,
            #"order-1.note: expected "x", got nothing"#,
            "order-1.total: expected 30.0, got 30 (an integer, not a float)",
            "order-9: expected a state, got none (keys with a state: order-1)",
        ])
    }

    @Test("an exact expectation reports fields the state has and the case did not list; nested paths and arrays too")
    func nestedDiff() throws {
        #expect(StateDiff.differences(
            expected: try JSONParser.parse(#"{"a":{"b":[1,2]},"c":1}"#),
            actual: try JSONParser.parse(#"{"a":{"b":[1,3,4]},"c":1,"d":true,"odd key":2}"#), path: "k", partial: false) == [
            "k.a.b[2]: expected 2, got 3",
            "k.a.b[3]: expected nothing, got 4 (the array has 3 items, not 2)",
            "k.d: expected nothing, got true",
            #"k["odd key"]: expected nothing, got 2"#,
        ])
        #expect(StateDiff.differences(
            expected: try JSONParser.parse(#"{"a":{"b":1}}"#), actual: try JSONParser.parse(#"{"a":{"b":1,"c":2},"d":3}"#),
            path: "k", partial: true).isEmpty)
    }

    @Test("an error that did not happen, or happened elsewhere, fails the case; an unexpected error is shown")
    func errors() throws {
        let text = """
            case no error happens
            {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
            expect error "nil value"

            case the error is elsewhere
            {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
            {"stream":"order-1","type":"ItemAdded","data":{"qty":1}}
            expect error at 1

            case an unexpected error
            {"stream":"order-1","type":"ItemAdded","data":{"qty":1}}
            expect order-1 has {"total":1}
            """
        let results = try run(text)
        #expect(results.map(\.passed) == [false, false, false])
        #expect(results[0].problems.map(\.message) == [#"expected the replay to fail with a message containing "nil value", but it succeeded"#])
        #expect(results[1].problems.first?.message.hasPrefix("expected a failure at event 1 (line 6), but it failed at event 2 (line 7): projection order_totals failed at seq 2") == true)
        #expect(results[2].problems.first?.line == 10)
        #expect(results[2].problems.first?.message.hasPrefix("the replay failed at event 1 (line 11): projection order_totals failed at seq 1: handler \"ItemAdded\"") == true)
    }

    @Test("a column type mismatch is found at its event, even among several events")
    func columnMismatchAtEvent() throws {
        let source = orderTotals.replacingOccurrences(of: "s.total = e.data.amount", with: "s.total = e.data.amount; s.customer = e.data.n")
        let text = """
            case a number in a text column
            {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25,"n":"ok"}}
            {"stream":"order-2","type":"OrderPlaced","data":{"customer":"c1","amount":25,"n":7}}
            {"stream":"order-3","type":"OrderPlaced","data":{"customer":"c1","amount":25,"n":"ok"}}
            expect error at 2 "column \\"customer\\" is declared text, but the state of key \\"order-2\\" has customer = 7 (an integer)"
            """
        let results = try run(text, projection: source)
        #expect(results.first?.passed == true, "\(results.map(\.problems))")
    }
}
