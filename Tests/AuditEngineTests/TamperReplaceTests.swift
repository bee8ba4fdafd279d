import Testing

@testable import AuditEngine

/// REPLACE's implicit delete fires no DELETE trigger (unless recursive_triggers is on,
/// which an attacker does not set), and UPSERT's update path must not reach a stored
/// event either: the database itself refuses every form with its triggers in place.
@Suite("Tampering: REPLACE and UPSERT")
struct TamperReplaceTests {
    static let columns = "(seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash)"

    /// A row copied from seq 5 (id e5, stream s2, version 2) with forged data and the
    /// given keys. The log's next seq is 10.
    static func row(seq: String, id: String = "id", stream: String = "stream", version: String = "version") -> String {
        "SELECT \(seq), \(id), \(stream), \(version), type, occurred_at, recorded_at, '{\"forged\":1}', meta, hash FROM events WHERE seq = 5"
    }

    /// Which key of a stored event the row takes: its seq, its id, its (stream, version).
    static let conflicts: [(String, String)] = [
        ("seq", row(seq: "5", id: "'new-id'", stream: "'new-stream'", version: "1")),
        ("id", row(seq: "10", id: "'e5'", stream: "'new-stream'", version: "1")),
        ("stream and version", row(seq: "10", id: "'new-id'")),
        ("all three", row(seq: "5")),
    ]

    static var forms: [String] {
        var forms: [String] = []
        for (_, source) in conflicts {
            for verb in ["INSERT OR REPLACE", "REPLACE", "INSERT OR IGNORE", "INSERT OR ROLLBACK", "INSERT OR FAIL", "INSERT OR ABORT", "INSERT"] {
                forms.append("\(verb) INTO events \(columns) \(source)")
            }
            for target in ["(seq)", "(id)", "(stream, version)", ""] {
                forms.append("INSERT INTO events \(columns) \(source) ON CONFLICT \(target) DO UPDATE SET data = excluded.data, hash = excluded.hash")
                forms.append("INSERT INTO events \(columns) \(source) ON CONFLICT \(target) DO NOTHING")
            }
        }
        forms += [
            "UPDATE OR REPLACE events SET seq = 4 WHERE seq = 5",
            "UPDATE OR REPLACE events SET data = '{}' WHERE seq = 5",
            "UPDATE OR IGNORE events SET id = 'e4' WHERE seq = 5",
            "REPLACE INTO events \(columns) SELECT seq, id, stream, version, type, occurred_at, recorded_at, '{}', meta, hash FROM events",
            "INSERT OR REPLACE INTO events \(columns) SELECT NULL, 'e5', stream, version, type, occurred_at, recorded_at, '{}', meta, hash FROM events WHERE seq = 5",
            "INSERT OR REPLACE INTO events \(columns) SELECT NULL, 'new-id', 'new-stream', 1, type, occurred_at, recorded_at, '{}', meta, hash FROM events WHERE seq = 5",
            "REPLACE INTO events \(columns) SELECT 10, id, stream, version, type, occurred_at, recorded_at, data, meta, hash FROM events WHERE seq = 9",
            "INSERT OR REPLACE INTO events \(columns) SELECT -1, 'new-id', 'new-stream', 1, type, occurred_at, recorded_at, data, meta, hash FROM events WHERE seq = 9",
        ]
        return forms
    }

    @Test("every REPLACE and UPSERT form leaves every stored event as it was, and the log verifies", arguments: forms)
    func refused(sql: String) throws {
        let victim = try Victim()
        let before = victim.dump()
        victim.sqlite(sql)  // refused (an error) or ignored: either way nothing changes
        #expect(victim.dump() == before, "\(sql)")
        #expect(victim.failure() == nil)
    }

    @Test("a plain INSERT of a new event at the next seq is not an edit: the database takes it, verify finds it")
    func appendOutsideTheEngine() throws {
        let victim = try Victim()
        #expect(victim.sqlite("REPLACE INTO events \(Self.columns) \(Self.row(seq: "10", id: "'new-id'", stream: "'new-stream'", version: "1"))") == nil)
        victim.expectProblem(at: 10, "does not match its hash")
        victim.expectProblem(at: 10, "events after seq 9 were added outside the engine")
    }

    @Test("the engine's own duplicate path still works under the trigger: a re-sent id is a duplicate")
    func duplicates() throws {
        let victim = try Victim()
        let store = try EventStore(path: victim.path)
        let again = try store.ingest(path: victim.dir.file("victim.jsonl"))
        #expect(again == IngestSummary(appended: 0, duplicates: Int(Victim.count), lastSeq: Victim.count))
        let stored = try store.events(EventFilter(fromSeq: 5, toSeq: 5))[0]
        let resent = try store.append(NewEvent(stream: stored.stream, type: stored.type, data: try JSONParser.parse(stored.data),
                                              meta: try JSONParser.parse(stored.meta), occurredAt: stored.occurredAt, id: "e5"))
        #expect(resent.wasDuplicate && resent.event.seq == 5)
    }
}
