import Foundation
import Testing

@testable import AuditEngine

/// The repository's example projections over the real logs, checked against values
/// computed here directly from the JSONL, without the engine's replay.
@Suite("Example projections on the real logs")
struct ExampleProjectionTests {
    static let projections = repositoryRoot + "/projections"

    func replayExamples() throws -> (TempDir, EventStore) {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: exampleLog("road-fines.jsonl"))
        try store.ingest(path: exampleLog("permit-receipts.jsonl"))
        let loaded = try Projection.loadAll(directory: Self.projections).map { try $0.get() }
        let outcomes = try store.replay(loaded)
        #expect(outcomes.allSatisfy { $0.status == .rebuilt }, "\(outcomes)")
        return (dir, store)
    }

    func events(_ file: String) throws -> [JSONValue] {
        try String(contentsOfFile: exampleLog(file), encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }

    func number(_ value: JSONValue?) -> Double {
        switch value {
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        default: return 0
        }
    }

    func cents(_ value: JSONValue?) -> Int64 { Int64((number(value) * 100).rounded()) }

    func states(_ store: EventStore, _ projection: String) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        try store.forEachState(projection: projection) { result[$0] = try JSONParser.parse($1) }
        return result
    }

    @Test("fine_balances: amount + expenses + penalties − payments for every fine")
    func fineBalances() throws {
        let (_, store) = try replayExamples()
        var expected: [String: Int64] = [:]
        for e in try events("road-fines.jsonl") {
            let fine = e["stream"]!.stringValue!
            let data = e["data"]!
            switch e["type"]!.stringValue! {
            case "Create Fine": expected[fine, default: 0] += cents(data["amount"])
            case "Send Fine": expected[fine, default: 0] += cents(data["expense"])
            case "Add penalty": expected[fine, default: 0] += cents(data["amount"])
            case "Payment": expected[fine, default: 0] -= cents(data["paymentAmount"])
            default: break
            }
        }
        let actual = try states(store, "fine_balances")
        #expect(actual.count == 100 && expected.count == 100)
        for (fine, balance) in expected {
            #expect(actual[fine]?["balance_cents"] == .int(balance), "fine \(fine)")
        }
        #expect(actual["S45359"]?["status"] == .string("credit collection"))
        #expect(actual["S45359"]?["balance_cents"] == .int(3130 + 646 + 6259))
    }

    @Test("credit_collection_by_year: fines sent for credit collection per year")
    func creditCollection() throws {
        let (_, store) = try replayExamples()
        var expected: [String: Int64] = [:]
        for e in try events("road-fines.jsonl") where e["type"] == .string("Send for Credit Collection") {
            expected[String(e["occurred_at"]!.stringValue!.prefix(4)), default: 0] += 1
        }
        let actual = try states(store, "credit_collection_by_year").mapValues { $0["fines"] }
        #expect(actual == expected.mapValues { .int($0) })
        #expect(expected.values.reduce(0, +) == 36)
    }

    @Test("permit_cases: hours from receipt to the T10 decision")
    func permitCases() throws {
        let (_, store) = try replayExamples()
        var received: [String: Double] = [:]
        var hours: [String: Double] = [:]
        for e in try events("permit-receipts.jsonl") {
            let stream = e["stream"]!.stringValue!
            let at = Double(try Timestamp(rfc3339: e["occurred_at"]!.stringValue!).milliseconds) / 1000
            let type = e["type"]!.stringValue!
            if type == "Confirmation of receipt", received[stream] == nil { received[stream] = at }
            if type == "T10 Determine necessity to stop indication", let start = received[stream], hours[stream] == nil {
                hours[stream] = (at - start) / 3600
            }
        }
        let actual = try states(store, "permit_cases")
        #expect(actual.count == 1434)
        var decided = 0
        for (stream, state) in actual {
            if let expected = hours[stream] {
                decided += 1
                #expect(abs(number(state["hours_to_decision"]) - expected) < 1e-6, "case \(stream)")
            } else {
                #expect(state["hours_to_decision"] == nil, "case \(stream)")
            }
        }
        #expect(decided == hours.count && decided > 1000)
    }

    @Test("permit_backlog_by_month: cases received and not yet decided at each month's end")
    func permitBacklog() throws {
        let (_, store) = try replayExamples()
        // Independently: a case is received at its first receipt confirmation and
        // decided at its first T10 after that.
        var received: [String: String] = [:]
        var decided: [String: String] = [:]
        for e in try events("permit-receipts.jsonl") {
            let stream = e["stream"]!.stringValue!
            let at = try Timestamp(rfc3339: e["occurred_at"]!.stringValue!).description
            switch e["type"]!.stringValue! {
            case "Confirmation of receipt" where received[stream] == nil: received[stream] = at
            case "T10 Determine necessity to stop indication" where received[stream] != nil && decided[stream] == nil: decided[stream] = at
            default: break
            }
        }
        func month(_ t: String) -> String { String(t.prefix(7)) }
        func next(_ m: String) -> String {
            let y = Int(m.prefix(4))!, n = Int(m.suffix(2))!
            return n == 12 ? String(format: "%04d-01", y + 1) : String(format: "%04d-%02d", y, n + 1)
        }
        var expected: [String] = []
        var m = month(received.values.min()!)
        let last = month(max(received.values.max()!, decided.values.max()!))
        while m <= last {
            let end = next(m) + "-01T00:00:00.000Z"
            let arrivals = received.values.filter { month($0) == m }.count
            let decisions = decided.values.filter { month($0) == m }.count
            let backlog = received.filter { stream, at in at < end && (decided[stream].map { $0 >= end } ?? true) }.count
            expected.append("\(m) \(arrivals) \(decisions) \(backlog)")
            m = next(m)
        }
        let sql = try String(contentsOfFile: repositoryRoot + "/queries/permit_backlog_by_month.sql", encoding: .utf8)
        var rows: [String] = []
        try store.query(sql: sql, source: "permit_backlog_by_month", header: { #expect($0 == ["month", "received", "decided", "backlog"]) }) {
            rows.append($0.map(\.text).joined(separator: " "))
        }
        #expect(rows == expected)
        #expect(rows.count >= 12 && rows.last?.hasSuffix(" 151") == true)
    }

    @Test("explain lists the events that built one key, ending in its stored state; as-of cuts it")
    func explain() throws {
        let (_, store) = try replayExamples()
        let projection = try Projection.load(file: Self.projections + "/fine_balances.lua", libDirectory: Self.projections + "/lib")
        var steps: [ExplainStep] = []
        try store.explain(projection, key: "S45359") { steps.append($0) }
        #expect(steps.map(\.event.type) == ["Create Fine", "Send Fine", "Add penalty", "Send for Credit Collection"])
        var stored: String?
        try store.forEachState(projection: "fine_balances", key: "S45359") { stored = $1 }
        #expect(steps.last?.state == stored)
        var early: [ExplainStep] = []
        try store.explain(projection, key: "S45359", filter: EventFilter(asOf: try Timestamp(dateOrTime: "2000-05-01"))) { early.append($0) }
        #expect(early.map(\.event.type) == ["Create Fine", "Send Fine"])
        let yearly = try Projection.load(file: Self.projections + "/credit_collection_by_year.lua", libDirectory: Self.projections + "/lib")
        var years: [ExplainStep] = []
        try store.explain(yearly, key: "2002") { years.append($0) }
        #expect(years.count == 5 && years.allSatisfy { $0.event.occurredAt.description.hasPrefix("2002") })
        #expect(years.last?.state == #"{"fines":5,"year":2002}"#)
    }

    @Test("the saved queries run over the example projections")
    func savedQueries() throws {
        let (_, store) = try replayExamples()
        for name in ["outstanding_fines", "credit_collection_per_year", "permit_decision_times", "permit_backlog_by_month"] {
            let sql = try String(contentsOfFile: repositoryRoot + "/queries/\(name).sql", encoding: .utf8)
            var rows = 0
            try store.query(sql: sql, source: name, header: { _ in }, row: { _ in rows += 1 })
            #expect(rows > 0, "\(name)")
        }
    }
}
