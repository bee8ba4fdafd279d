import Foundation
import Testing

@testable import AuditEngine

@Suite("Reading events")
struct ReadTests {
    /// Three events whose occurrence order differs from their seq order (a late event).
    func lateLog(_ dir: TempDir) throws -> EventStore {
        let store = try dir.store()
        try store.ingest(path: dir.jsonl("a.jsonl", [
            eventLine(stream: "a", extra: #","occurred_at":"2024-06-01T10:00:00Z""#),
            eventLine(stream: "b", extra: #","occurred_at":"2024-06-03T10:00:00Z""#),
            eventLine(stream: "a", type: "Paid", extra: #","occurred_at":"2024-06-02T10:00:00+02:00""#),
        ]), missingIds: .generate)
        return store
    }

    @Test("--as-of selects by occurred_at, inclusive; a date means its whole day")
    func asOf() throws {
        let dir = TempDir()
        let store = try lateLog(dir)
        #expect(try store.events(EventFilter(asOf: Timestamp(dateOrTime: "2024-06-02"))).map(\.seq) == [1, 3])
        #expect(try store.events(EventFilter(asOf: Timestamp(rfc3339: "2024-06-02T08:00:00Z"))).map(\.seq) == [1, 3])
        #expect(try store.events(EventFilter(asOf: Timestamp(rfc3339: "2024-06-02T07:59:59.999Z"))).map(\.seq) == [1])
    }

    @Test("--known-at selects by recorded_at: what the log held then")
    func knownAt() throws {
        let dir = TempDir()
        let store = try lateLog(dir)
        let recorded = try store.events().first!.recordedAt
        try store.append(NewEvent(stream: "c", type: "T", occurredAt: Timestamp(rfc3339: "2020-01-01T00:00:00Z")))
        #expect(try store.events(EventFilter(knownAt: recorded)).map(\.seq) == [1, 2, 3])
        #expect(try store.events(EventFilter(knownAt: Timestamp(milliseconds: recorded.milliseconds - 1))).isEmpty)
        let both = EventFilter(asOf: try Timestamp(dateOrTime: "2024-06-01"), knownAt: .max)
        #expect(try store.events(both).map(\.seq) == [1, 4])
    }

    @Test("--known-at finds the exact prefix over many commits")
    func knownAtManyCommits() throws {
        let dir = TempDir()
        let store = try dir.store()
        var recorded: [Timestamp] = []
        for i in 0..<40 {
            recorded.append(try store.append(NewEvent(stream: "s\(i % 3)", type: "T")).event.recordedAt)
            if i % 7 == 0 { usleep(2_000) }  // some commits share a millisecond, some do not
        }
        for (i, time) in recorded.enumerated() {
            let expected = recorded.lastIndex(of: time)! + 1
            #expect(try store.events(EventFilter(knownAt: time)).count == expected, "event \(i + 1)")
            #expect(try store.events(EventFilter(toSeq: 3, knownAt: time)).count == min(3, expected))
        }
        #expect(try store.events(EventFilter(knownAt: .min)).isEmpty)
        #expect(try store.events(EventFilter(knownAt: .max)).count == 40)
    }

    @Test("events are found by meta.correlation_id")
    func correlation() throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: dir.jsonl("c.jsonl", [
            eventLine(stream: "a", extra: #","meta":{"correlation_id":"req-1"}"#),
            eventLine(stream: "b", extra: #","meta":{"correlation_id":"req-2"}"#),
            eventLine(stream: "c", extra: #","meta":{"correlation_id":"req-1","actor":"x"}"#),
            eventLine(stream: "d", extra: #","meta":{"correlation_id":7}"#),
        ]), missingIds: .generate)
        #expect(try store.events(EventFilter(correlationId: "req-1")).map(\.seq) == [1, 3])
        #expect(try store.events(EventFilter(correlationId: "7")).map(\.seq) == [4])
        #expect(try store.events(EventFilter(stream: "c", correlationId: "req-1")).map(\.seq) == [3])
    }

    @Test("filters combine: stream, type, seq range, limit")
    func filters() throws {
        let dir = TempDir()
        let store = try lateLog(dir)
        #expect(try store.events(EventFilter(stream: "a")).map(\.seq) == [1, 3])
        #expect(try store.events(EventFilter(type: "Paid")).map(\.seq) == [3])
        #expect(try store.events(EventFilter(fromSeq: 2, toSeq: 3)).map(\.seq) == [2, 3])
        #expect(try store.events(EventFilter(limit: 2)).map(\.seq) == [1, 2])
    }
}
