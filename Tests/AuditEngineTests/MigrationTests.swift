import Foundation
import GRDB
import Testing

@testable import AuditEngine

@Suite("Schema migrations")
struct MigrationTests {
    /// A database as the first schema version left it, with two events written the way
    /// that version wrote them.
    func firstVersionDatabase(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(queue, upTo: "v1-events")
        try queue.write { db in
            var hasher = EventHash()
            var previous = EventHash.genesis
            for seq in Int64(1)...2 {
                let fields = (id: "v1-\(seq)", stream: "s", type: "T", at: "2024-01-0\(seq)T00:00:00.000Z", data: #"{"n":\#(seq)}"#)
                let hash = hasher.hash(
                    previous: previous, seq: seq, id: fields.id, stream: fields.stream, version: seq, type: fields.type,
                    occurredAt: fields.at, recordedAt: fields.at, data: fields.data, meta: "{}")
                try db.execute(
                    sql: "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', ?)",
                    arguments: [seq, fields.id, fields.stream, seq, fields.type, fields.at, fields.at, fields.data, Data(hash)])
                try db.execute(sql: "UPDATE chain_head SET seq = ?, hash = ?, recorded_at = ?", arguments: [seq, Data(hash), fields.at])
                previous = hash
            }
        }
    }

    @Test("a database of the first schema version is read as it is, refused by writers, upgraded, verifies and takes appends")
    func fromFirstVersion() throws {
        let dir = TempDir()
        try firstVersionDatabase(dir.file("old.db"))
        #expect(try EventStore(path: dir.file("old.db"), access: .readOnly).verify().events == 2)
        #expect(throws: StoreError.schemaTooOld(path: dir.file("old.db"))) { try EventStore(path: dir.file("old.db")) }
        let report = try EventStore.upgrade(path: dir.file("old.db"))
        #expect(report.applied == Array(Schema.migrationIdentifiers.dropFirst()) && report.events == 2)
        let store = try EventStore(path: dir.file("old.db"))
        #expect(try store.verify().events == 2)
        let next = try store.append(NewEvent(stream: "s", type: "T", expectedVersion: .exactly(2))).event
        #expect(next.seq == 3 && next.version == 3)
        #expect(try store.verify().events == 3)
        let added = try sqlite3CLI(
            dir.file("old.db"),
            "SELECT name FROM sqlite_master WHERE name LIKE 'events_%' OR name = 'event_correlations' ORDER BY name")
        #expect(added.split(separator: "\n") == [
            "event_correlations", "events_are_appended", "events_are_not_deleted", "events_are_not_updated", "events_by_occurred_at",
            "events_by_type",
        ])
    }

    @Test("a database written by a newer build is refused, not misread")
    func newerBuild() throws {
        let dir = TempDir()
        _ = try dir.store()
        try sqlite3CLI(dir.file("audit.db"), "INSERT INTO grdb_migrations VALUES ('v99-future')")
        #expect(throws: StoreError.schemaTooNew(path: dir.file("audit.db"), unknownMigrations: ["v99-future"])) {
            try EventStore(path: dir.file("audit.db"))
        }
    }
}
