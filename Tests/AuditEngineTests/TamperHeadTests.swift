import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// The chain head record is not hashed; it must equal the last event field by field.
/// `verify` checks every field, and a writer refuses to append after a head that does
/// not match (it would chain new events to a forged end, or stamp them with a forged time).
@Suite("Tampering: the chain head")
struct TamperHeadTests {
    static let edits: [(String, Int64?, String)] = [
        ("UPDATE chain_head SET seq = 8", 9, "events after seq 8 were added outside the engine"),
        ("UPDATE chain_head SET seq = 10", 10, "events were removed from the end"),
        ("UPDATE chain_head SET hash = zeroblob(32)", 9, "its hash is not the hash of the last event"),
        ("UPDATE chain_head SET hash = (SELECT hash FROM events WHERE seq = 8)", 9, "its hash is not the hash of the last event"),
        ("UPDATE chain_head SET recorded_at = '2099-01-01T00:00:00.000Z'", 9, "its recorded_at (2099-01-01T00:00:00.000Z) is not the last event's"),
        ("UPDATE chain_head SET recorded_at = ''", 9, "its recorded_at () is not the last event's"),
        ("DELETE FROM chain_head", 10, "the chain head record is missing"),
    ]

    @Test("verify checks every field of the head record against the last event", arguments: edits)
    func verifyFindsIt(sql: String, seq: Int64?, text: String) throws {
        let victim = try Victim()
        #expect(victim.sqlite(sql) == nil)
        victim.expectProblem(at: seq, text)
    }

    @Test("a writer refuses to append after a head that is not the last event, and appends nothing", arguments: edits)
    func writersRefuse(sql: String, seq: Int64?, text: String) throws {
        let victim = try Victim()
        #expect(victim.sqlite(sql) == nil)
        let before = victim.dump()
        let store = try EventStore(path: victim.path)
        #expect {
            try store.append(NewEvent(stream: "s", type: "T"))
        } throws: { error in
            guard let error = error as? StoreError, case .integrity(_, let reason) = error else { return false }
            return error.category == .integrity && reason.contains("run audit verify") && reason.contains("nothing was appended")
        }
        let file = victim.dir.jsonl("more.jsonl", [#"{"id":"m1","stream":"s","type":"T","data":{}}"#])
        #expect(throws: StoreError.self) { try store.ingest(path: file) }
        #expect(victim.dump() == before)
    }

    @Test("a damaged head is exit 4 from verify, never a crash: seq stored as text, a short hash, a second record")
    func damagedFields() throws {
        for sql in [
            "UPDATE chain_head SET seq = 'x'", "UPDATE chain_head SET hash = x'00'", "UPDATE chain_head SET recorded_at = 5",
            "INSERT INTO chain_head VALUES (2, 9, zeroblob(32), '')",
        ] {
            let victim = try Victim()
            victim.unstrict("chain_head")
            victim.sqlite("PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, 'CHECK (singleton = 1)', '') WHERE name = 'chain_head'")
            #expect(victim.sqlite(sql) == nil, "\(sql)")
            victim.expectProblem(at: 9, "the chain head record is damaged")
        }
    }

    @Test("the writer's time floor is the last event's recorded_at: a clock behind it never makes time go back")
    func timeFloor() throws {
        let victim = try Victim()
        // A consistent edit of the last event and the head (as a whole rewrite would be),
        // putting its recorded_at in the future: later appends are stamped no earlier.
        let store = try EventStore(path: victim.path)
        let last = try store.events(EventFilter(fromSeq: 9))[0]
        let previous = try store.events(EventFilter(fromSeq: 8, toSeq: 8))[0].hash
        var future = last
        future.recordedAt = try Timestamp(rfc3339: "2098-06-01T00:00:00Z")
        var hasher = EventHash()
        let hash = hasher.hash(of: future, previous: previous)
        #expect(try victim.withGuardsDropped("""
            UPDATE events SET recorded_at = '\(future.recordedAt)', hash = x'\(Hex.encode(hash))' WHERE seq = 9;
            UPDATE chain_head SET recorded_at = '\(future.recordedAt)', hash = x'\(Hex.encode(hash))';
            """) == nil)
        let appended = try EventStore(path: victim.path).append(NewEvent(stream: "s", type: "T")).event
        #expect(appended.recordedAt == future.recordedAt)
    }
}
