import Crypto
import Foundation
import Testing

@testable import AuditEngine

/// Lines without an id: ingesting the same file again would append them again, so they
/// are refused unless the caller says how to make their ids.
@Suite("Ingesting lines without ids")
struct IngestIdTests {
    static let lines = [
        #"{"id":"given","stream":"a","type":"T","data":{}}"#,
        #"{"stream":"a","type":"T","data":{"n":1}}"#,
        #"{"stream":"a","type":"T","data":{"n":1}}"#,
        #"{"stream":"b","type":"T","data":{"n":1}}"#,
    ]

    @Test("refused by default, naming only the first such line; nothing is appended")
    func refused() throws {
        let dir = TempDir()
        let store = try dir.store()
        let file = dir.jsonl("a.jsonl", Self.lines + [#"{"stream":"c","type":"T","data":{}}"#, #"{"id":"x","stream":"c","type":"T","data":5}"#])
        #expect {
            try store.ingest(path: file)
        } throws: { error in
            guard case .ingestRejected(_, let errors, _) = error as? StoreError else { return false }
            return errors.map(\.line) == [2, 6] && errors[0].reason.contains(#"the line has no "id""#)
                && errors[0].reason.contains("--derive-ids") && errors[0].reason.contains("--generate-ids")
        }
        #expect(try store.head().seq == 0)
    }

    @Test("derived ids: the same file ingested again is all duplicates; identical lines are distinct events; the id is reproducible")
    func derived() throws {
        let dir = TempDir()
        let store = try dir.store()
        let file = dir.jsonl("a.jsonl", Self.lines)
        #expect(try store.ingest(path: file, missingIds: .derive) == IngestSummary(appended: 4, duplicates: 0, lastSeq: 4))
        #expect(try store.ingest(path: file, missingIds: .derive) == IngestSummary(appended: 0, duplicates: 4, lastSeq: 4))
        let ids = try store.events().map(\.id)
        #expect(ids[0] == "given" && Set(ids).count == 4)
        // SHA-256 of the line's canonical text, a line feed and its occurrence number.
        let canonical = CanonicalJSON.string(try JSONParser.parse(Self.lines[2]))
        #expect(ids[2] == Hex.encode(Array(SHA256.hash(data: Data((canonical + "\n2").utf8)))))
        #expect(ids[1] == Hex.encode(Array(SHA256.hash(data: Data((canonical + "\n1").utf8)))))
        // The caveat: an identical line in another file is the same event.
        let other = dir.jsonl("b.jsonl", [Self.lines[3]])
        #expect(try store.ingest(path: other, missingIds: .derive) == IngestSummary(appended: 0, duplicates: 1, lastSeq: 4))
    }

    @Test("generated ids: every ingest appends the lines again (not idempotent)")
    func generated() throws {
        let dir = TempDir()
        let store = try dir.store()
        let file = dir.jsonl("a.jsonl", Self.lines)
        #expect(try store.ingest(path: file, missingIds: .generate).appended == 4)
        #expect(try store.ingest(path: file, missingIds: .generate) == IngestSummary(appended: 3, duplicates: 1, lastSeq: 7))
    }
}
