import Testing

@testable import AuditEngine

/// Tampering is done with the sqlite3 command-line tool, as someone editing the
/// database file directly would. The append-only triggers refuse plain UPDATE and
/// DELETE, so each attack first drops them, as an attacker would.
@Suite("Tamper evidence")
struct VerifyTests {
    static let dropGuards = "DROP TRIGGER events_are_not_updated; DROP TRIGGER events_are_not_deleted;"

    func fiveEvents(_ dir: TempDir) throws -> EventStore {
        let store = try dir.store()
        try store.ingest(path: dir.jsonl("e.jsonl", (1...5).map { eventLine(stream: "s\($0 % 2)", data: #"{"n":\#($0)}"#) }), missingIds: .generate)
        return store
    }

    func expectIntegrityFailure(_ store: EventStore, seq: Int64, mentioning text: String) {
        #expect {
            try store.verify()
        } throws: { error in
            guard let failure = error as? IntegrityFailure else { return false }
            return failure.problems.contains { $0.seq == seq && $0.reason.contains(text) }
        }
    }

    @Test("an untouched log verifies and reports the head")
    func clean() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        let report = try store.verify()
        #expect(report.events == 5)
        #expect(report.head == Hex.encode(try store.head().hash))
    }

    @Test("the append-only triggers refuse UPDATE and DELETE from any SQL client")
    func triggers() throws {
        let dir = TempDir()
        _ = try fiveEvents(dir)
        #expect(throws: CLIFailure.self) { try sqlite3CLI(dir.file("audit.db"), "UPDATE events SET type = 'X' WHERE seq = 2") }
        #expect(throws: CLIFailure.self) { try sqlite3CLI(dir.file("audit.db"), "DELETE FROM events WHERE seq = 5") }
    }

    @Test("an edited row is found at its seq")
    func editedRow() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(dir.file("audit.db"), Self.dropGuards + #"UPDATE events SET data = '{"n":30}' WHERE seq = 3"#)
        expectIntegrityFailure(store, seq: 3, mentioning: "does not match its hash")
    }

    @Test("an edit that keeps the JSON's meaning but changes its bytes is found too")
    func reformattedRow() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(dir.file("audit.db"), Self.dropGuards + #"UPDATE events SET data = '{"n": 2}' WHERE seq = 2"#)
        expectIntegrityFailure(store, seq: 2, mentioning: "does not match its hash")
    }

    @Test("deleting the last row is found")
    func deletedLast() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(dir.file("audit.db"), Self.dropGuards + "DELETE FROM events WHERE seq = 5")
        expectIntegrityFailure(store, seq: 5, mentioning: "removed from the end")
    }

    @Test("deleting a middle row is found at the missing seq")
    func deletedMiddle() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(dir.file("audit.db"), Self.dropGuards + "DELETE FROM events WHERE seq = 2")
        expectIntegrityFailure(store, seq: 2, mentioning: "missing")
    }

    @Test("swapping two rows is found at the first of them")
    func swapped() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(
            dir.file("audit.db"),
            Self.dropGuards + "UPDATE events SET seq = -2 WHERE seq = 2; UPDATE events SET seq = 2 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = -2;")
        expectIntegrityFailure(store, seq: 2, mentioning: "does not match its hash")
    }

    @Test("a row added with raw SQL is found")
    func insertedRow() throws {
        let dir = TempDir()
        let store = try fiveEvents(dir)
        try sqlite3CLI(
            dir.file("audit.db"),
            "INSERT INTO events (seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash) SELECT 6, 'x', stream, 9, type, occurred_at, recorded_at, data, meta, hash FROM events WHERE seq = 5")
        expectIntegrityFailure(store, seq: 6, mentioning: "does not match its hash")
    }
}
