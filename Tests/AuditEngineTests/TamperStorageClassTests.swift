import Foundation
import Testing

@testable import AuditEngine

/// A value's storage class is not covered by the hash (audit.event.v1 hashes bytes), so
/// `CAST(type AS BLOB)` keeps the hash while `type = 'X'` stops matching. The STRICT
/// schema refuses such values; `verify` finds them where the schema no longer does
/// (STRICT removed, or a database an older build made).
@Suite("Tampering: storage classes")
struct TamperStorageClassTests {
    /// (column, an SQL expression of the same or a nearby value in another storage
    /// class, the class the message names). In a column of TEXT affinity numbers turn
    /// into text, so only a blob keeps another class there; INTEGER affinity keeps
    /// reals that are not whole, text that is not a number and blobs; BLOB keeps all.
    static let changes: [(String, String, String)] = [
        ("id", "CAST(id AS BLOB)", "a blob"),
        ("stream", "CAST(stream AS BLOB)", "a blob"),
        ("type", "CAST(type AS BLOB)", "a blob"),
        ("occurred_at", "CAST(occurred_at AS BLOB)", "a blob"),
        ("recorded_at", "CAST(recorded_at AS BLOB)", "a blob"),
        ("data", "CAST(data AS BLOB)", "a blob"),
        ("meta", "CAST(meta AS BLOB)", "a blob"),
        ("version", "version + 0.5", "a real number"),
        ("version", "CAST(CAST(version AS TEXT) AS BLOB)", "a blob"),
        ("version", "version || 'x'", "text"),
        ("hash", "CAST(hash AS TEXT)", "text"),
        ("hash", "hex(hash)", "text"),
        ("hash", "substr(hash, 1, 31)", "of 31 bytes"),
        ("hash", "hash || x'00'", "text"),
        ("hash", "CAST(hash AS BLOB) || zeroblob(1)", "text"),
        ("hash", "zeroblob(33)", "of 33 bytes"),
        ("hash", "length(hash)", "an integer"),
        ("hash", "1.5", "a real number"),
    ]

    static let rows: [Int64] = [1, 5, Victim.count]

    @Test("the STRICT table refuses every other storage class, even with the triggers dropped",
          arguments: changes.filter { !$0.2.hasPrefix("of ") })
    func strictRefuses(column: String, value: String, named: String) throws {
        let victim = try Victim()
        let before = victim.dump()
        let error = victim.sqlite(Victim.dropGuards + "UPDATE events SET \(column) = \(value) WHERE seq = 5")
        #expect(error != nil, "\(column) = \(value) was stored")
        #expect(victim.dump() == before)
    }

    @Test("a hash that is not 32 bytes: chain_head's CHECK refuses it; in events verify finds it (no SQL function may slow every insert)")
    func hashLength() throws {
        for hash in ["zeroblob(31)", "zeroblob(33)", "x''"] {
            let victim = try Victim()
            #expect(victim.sqlite("UPDATE chain_head SET hash = \(hash)")?.contains("CHECK constraint failed") == true)
            #expect(victim.sqlite(
                "INSERT INTO events SELECT 10, 'new-id', 'new-stream', 1, type, occurred_at, recorded_at, data, meta, \(hash) FROM events WHERE seq = 9") == nil)
            victim.expectProblem(at: 10, "its hash is stored as a blob of", "not a 32-byte blob")
        }
    }

    @Test("with STRICT removed, verify names the seq, the column and its storage class, for the first, a middle and the last row",
          arguments: changes)
    func unstricted(column: String, value: String, named: String) throws {
        for seq in Self.rows {
            let victim = try Victim()
            victim.unstrict()
            #expect(victim.sqlite(Victim.dropGuards + "UPDATE events SET \(column) = \(value) WHERE seq = \(seq)") == nil)
            victim.expectProblem(at: seq, "its \(column) is stored as", named)
            victim.expectProblem(at: nil, "the schema was altered", "table events is not as the engine made it")
        }
    }

    @Test("in a database an older build made (no STRICT yet, read as it is), verify names the seq and the column", arguments: changes)
    func olderSchema(column: String, value: String, named: String) throws {
        let victim = try Victim()
        let old = victim.dir.file("v7.db")
        try downgradeToV7(victim.path, old)
        #expect(try EventStore.verify(path: old).events == Victim.count)
        _ = try sqlite3CLI(old, "DROP TRIGGER events_are_not_updated; UPDATE events SET \(column) = \(value) WHERE seq = 5")
        #expect {
            try EventStore.verify(path: old)
        } throws: { error in
            guard let failure = error as? IntegrityFailure else { return false }
            // Only the value is wrong here, and the dropped trigger.
            return failure.problems.contains { $0.seq == 5 && $0.reason.contains("its \(column) is stored as") && $0.reason.contains(named) }
                && failure.problems.contains { $0.seq == nil && $0.reason.contains("trigger events_are_not_updated is missing") }
        }
    }

    @Test("an altered schema is refused at open, read-only and writable (exit 4, run audit verify), so a filter never passes over an event in silence; verify still reports it; an older schema still opens")
    func alteredSchemaRefusedAtOpen() throws {
        let victim = try Victim()
        victim.unstrict()
        #expect(victim.sqlite(Victim.dropGuards + "UPDATE events SET type = CAST(type AS BLOB) WHERE seq = 5") == nil)
        for access in [EventStore.Access.readOnly, .readWrite] {
            #expect {
                try EventStore(path: victim.path, access: access)
            } throws: { error in
                guard case StoreError.schemaAltered(_, let problems) = error, let store = error as? StoreError else { return false }
                return store.category == .integrity && problems.contains { $0.contains("table events is not as the engine made it") }
                    && "\(store)".contains("run audit verify")
            }
        }
        victim.expectProblem(at: 5, "its type is stored as a blob")
        victim.expectProblem(at: nil, "the schema was altered", "table events is not as the engine made it")

        let honest = try Victim()
        let old = honest.dir.file("v7.db")
        try downgradeToV7(honest.path, old)
        #expect(try EventStore(path: old, access: .readOnly).events(EventFilter(type: "T1")).map(\.seq) == [1, 3, 5, 7, 9])
    }

    @Test("a storage class change in chain_head and event_correlations is found too")
    func sideTables() throws {
        let victim = try Victim()
        victim.unstrict("chain_head")
        victim.sqlite("UPDATE chain_head SET seq = CAST(seq AS TEXT) || 'x'")
        victim.expectProblem(at: Victim.count, "the chain head record is damaged", "its seq is stored as text")
        let second = try Victim()
        second.unstrict("event_correlations")
        #expect(second.sqlite("UPDATE event_correlations SET correlation_id = CAST(correlation_id AS BLOB) WHERE seq = 2") == nil)
        second.expectProblem(at: 2, "event_correlations holds a row whose seq is an integer and correlation_id a blob")
    }
}
