import Foundation
import Testing

@testable import AuditEngine

@Suite("Ingesting JSONL")
struct IngestTests {
    @Test("the real road-fines log ingests whole and verifies")
    func realLog() throws {
        let dir = TempDir()
        let store = try dir.store()
        let summary = try store.ingest(path: exampleLog("road-fines.jsonl"))
        #expect(summary == IngestSummary(appended: 390, duplicates: 0, lastSeq: 390))
        let first = try #require(store.events(EventFilter(limit: 1)).first)
        #expect(first.id == "road-fines-242" && first.stream == "S45359" && first.type == "Create Fine")
        #expect(first.occurredAt.description == "2000-03-14T23:00:00.000Z")
        #expect(first.data == #"{"amount":31.3,"article":157,"dismissal":"NIL","points":0,"totalPaymentAmount":0,"vehicleClass":"A"}"#)
        #expect(try store.verify().events == 390)
    }

    @Test("re-ingesting the same file appends nothing and counts duplicates")
    func idempotentReingest() throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: exampleLog("road-fines.jsonl"))
        let head = try store.head()
        let again = try store.ingest(path: exampleLog("road-fines.jsonl"))
        #expect(again == IngestSummary(appended: 0, duplicates: 390, lastSeq: 390))
        #expect(try store.head() == head)
    }

    @Test("an id repeated within one file with identical content is a duplicate")
    func duplicateWithinFile() throws {
        let dir = TempDir()
        let store = try dir.store()
        let line = eventLine(extra: #","id":"x1""#)
        let summary = try store.ingest(path: dir.jsonl("dup.jsonl", [line, line, eventLine(stream: "order-2")]), missingIds: .generate)
        #expect(summary == IngestSummary(appended: 2, duplicates: 1, lastSeq: 2))
    }

    static let badLines: [(String, String, String)] = [
        ("not JSON", "{not json", "not valid JSON"),
        ("not an object", "[1,2]", "must be a JSON object"),
        ("missing stream", #"{"type":"T","data":{}}"#, "missing \"stream\""),
        ("empty stream", #"{"stream":"","type":"T","data":{}}"#, "\"stream\" must not be empty"),
        ("missing type", #"{"stream":"s","data":{}}"#, "missing \"type\""),
        ("empty type", #"{"stream":"s","type":"","data":{}}"#, "\"type\" must not be empty"),
        ("missing data", #"{"stream":"s","type":"T"}"#, "missing \"data\""),
        ("data not an object", #"{"stream":"s","type":"T","data":[1]}"#, "\"data\" must be a JSON object"),
        ("meta not an object", #"{"stream":"s","type":"T","data":{},"meta":3}"#, "\"meta\" must be a JSON object"),
        ("bad time", #"{"stream":"s","type":"T","data":{},"occurred_at":"2024-02-30T00:00:00Z"}"#, "\"occurred_at\": invalid time"),
        ("time without zone", #"{"stream":"s","type":"T","data":{},"occurred_at":"2024-02-01T00:00:00"}"#, "a zone is required"),
        ("oversized stream", #"{"stream":"\#(String(repeating: "s", count: 600))","type":"T","data":{}}"#, "\"stream\" is 600 bytes"),
        ("oversized data", #"{"stream":"s","type":"T","data":{"x":"\#(String(repeating: "x", count: 1_100_000))"}}"#, "\"data\" is 1100008 bytes"),
        ("unknown field", #"{"stream":"s","type":"T","data":{},"occured_at":"2024-01-01T00:00:00Z"}"#, "unknown field \"occured_at\""),
        ("store-assigned field", #"{"stream":"s","type":"T","data":{},"seq":4}"#, "\"seq\" is assigned by the store"),
        ("bad expected_version", #"{"stream":"s","type":"T","data":{},"expected_version":-1}"#, "\"expected_version\" must be"),
        ("expected_version a number in a string", #"{"stream":"s","type":"T","data":{},"expected_version":"5"}"#, #"not the string "5""#),
        ("expected_version an odd string", #"{"stream":"s","type":"T","data":{},"expected_version":"None"}"#, #"not the string "None""#),
        ("a byte order mark", "\u{FEFF}" + #"{"stream":"s","type":"T","data":{}}"#, "starts with a UTF-8 byte order mark"),
    ]

    @Test("a bad line rejects the whole file, names the line and reason, and appends nothing", arguments: badLines)
    func badLine(name: String, line: String, reason: String) throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: exampleLog("road-fines.jsonl"))
        let before = try store.head()
        let file = dir.jsonl("bad.jsonl", [eventLine(), eventLine(stream: "order-2"), line, eventLine(stream: "order-3")])
        #expect {
            try store.ingest(path: file, missingIds: .generate)
        } throws: { error in
            guard let error = error as? StoreError, case .ingestRejected(_, let errors, _) = error else { return false }
            return error.category == .invalidInput && errors.count == 1 && errors[0].line == 3
                && errors[0].reason.contains(reason) && "\(error)".contains("bad.jsonl:3:")
        }
        #expect(try store.head() == before)
        #expect(try store.events(EventFilter(fromSeq: 391)).isEmpty)
    }

    @Test("a version conflict in a file rejects it whole with exit category conflict")
    func versionConflict() throws {
        let dir = TempDir()
        let store = try dir.store()
        let file = dir.jsonl("c.jsonl", [
            eventLine(extra: #","expected_version":"none""#),
            eventLine(type: "ItemAdded", extra: #","expected_version":1"#),
            eventLine(type: "ItemAdded", extra: #","expected_version":1"#),
        ])
        #expect {
            try store.ingest(path: file, missingIds: .generate)
        } throws: { error in
            guard let error = error as? StoreError, case .ingestRejected(_, let errors, _) = error else { return false }
            return error.category == .conflict && errors.map(\.line) == [3]
                && errors[0].reason.contains("expected version 1, but the stream is at version 2")
        }
        #expect(try store.head().seq == 0)
    }

    @Test("an id re-sent with different content fails the ingest naming the id and line")
    func idConflict() throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: dir.jsonl("a.jsonl", [eventLine(extra: #","id":"x1""#)]), missingIds: .generate)
        let file = dir.jsonl("b.jsonl", [eventLine(stream: "order-9"), eventLine(data: #"{"amount":11}"#, extra: #","id":"x1""#)])
        #expect {
            try store.ingest(path: file, missingIds: .generate)
        } throws: { error in
            guard let error = error as? StoreError, case .ingestRejected(_, let errors, _) = error else { return false }
            return error.category == .invalidInput && errors.map(\.line) == [2] && errors[0].reason.contains("\"x1\"")
        }
        #expect(try store.head().seq == 1)
    }

    @Test("several bad lines are all reported, in order, up to the limit")
    func manyBadLines() throws {
        let dir = TempDir()
        let store = try dir.store()
        var lines = (0..<30).map { eventLine(stream: "s\($0)") }
        for i in [4, 9, 17] { lines[i] = "oops" }
        #expect {
            try store.ingest(path: dir.jsonl("m.jsonl", lines), missingIds: .generate)
        } throws: { error in
            guard case .ingestRejected(_, let errors, let more) = error as? StoreError else { return false }
            return errors.map(\.line) == [5, 10, 18] && !more
        }
        let flood = dir.jsonl("flood.jsonl", Array(repeating: "oops", count: 100))
        #expect {
            try store.ingest(path: flood, missingIds: .generate)
        } throws: { error in
            guard case .ingestRejected(_, let errors, let more) = error as? StoreError else { return false }
            return errors.count == EventStore.maxReportedLineErrors && more
        }
    }

    @Test("blank lines and CRLF line ends are accepted; a last line without newline counts")
    func lineEnds() throws {
        let dir = TempDir()
        let store = try dir.store()
        let path = dir.file("crlf.jsonl")
        let text = eventLine() + "\r\n\r\n" + eventLine(stream: "b") + "\r\n   \n" + eventLine(stream: "c")
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        #expect(try store.ingest(path: path, missingIds: .generate).appended == 3)
    }

    @Test("a large file streams through in one transaction, appended in order")
    func largeFile() throws {
        let dir = TempDir()
        let store = try dir.store()
        let lines = (0..<20_000).map { i in
            eventLine(stream: "s\(i % 997)", type: i % 3 == 0 ? "A" : "B", data: #"{"i":\#(i)}"#)
        }
        let summary = try store.ingest(path: dir.jsonl("big.jsonl", lines), missingIds: .generate)
        #expect(summary.appended == 20_000 && summary.lastSeq == 20_000)
        let s5 = try store.events(EventFilter(stream: "s5"))
        #expect(s5.map(\.version) == Array(1...Int64(s5.count)))
        #expect(s5.map(\.data) == stride(from: 5, to: 20_000, by: 997).map { #"{"i":\#($0)}"# })
        #expect(try store.verify().events == 20_000)
    }

    @Test("an unreadable file is a clear error")
    func missingFile() throws {
        let dir = TempDir()
        let store = try dir.store()
        #expect {
            try store.ingest(path: dir.file("nope.jsonl"))
        } throws: { error in
            "\(error)".contains("cannot read") && "\(error)".contains("nope.jsonl")
        }
    }
}
