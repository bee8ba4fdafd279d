import Testing

@testable import AuditEngine

/// Tables derived from the events (today the correlation index) are rebuilt by
/// `verify` from the hashed meta and compared; and the schema is compared with the one
/// the engine's migrations make.
@Suite("Tampering: side tables and the schema")
struct TamperSideTableTests {
    @Test("the correlation index: an omitted, a forged, a moved or a renamed row is found at its seq; the filter drops forged candidates")
    func correlations() throws {
        let edits: [(String, Int64, String)] = [
            ("DELETE FROM event_correlations WHERE seq = 5", 5, #"omits it, although its meta.correlation_id is "corr-A""#),
            ("INSERT INTO event_correlations VALUES ('corr-A', 7)", 7, "but its meta carries no correlation_id"),
            ("UPDATE event_correlations SET seq = 6 WHERE seq = 5", 5, "omits it"),
            ("UPDATE event_correlations SET correlation_id = 'corr-B' WHERE seq = 2", 2, #"its meta.correlation_id is "corr-A""#),
            ("UPDATE event_correlations SET correlation_id = '7x' WHERE seq = 8", 8, #"its meta.correlation_id is "7""#),
            ("INSERT INTO event_correlations VALUES ('corr-A', 99)", 99, "but there is no such event"),
            ("INSERT INTO event_correlations VALUES ('other', 2)", 2, #"lists it under "corr-A", "other""#),
        ]
        for (sql, seq, text) in edits {
            let victim = try Victim()
            #expect(victim.sqlite(sql) == nil)
            victim.expectProblem(at: seq, "event_correlations", text)
        }
        let victim = try Victim()
        victim.sqlite("INSERT INTO event_correlations VALUES ('corr-A', 7); INSERT INTO event_correlations VALUES ('7', 3)")
        let store = try EventStore(path: victim.path, access: .readOnly)
        #expect(try store.events(EventFilter(correlationId: "corr-A")).map(\.seq) == [2, 5])
        #expect(try store.events(EventFilter(correlationId: "7")).map(\.seq) == [8])
        #expect(try store.events(EventFilter(correlationId: "corr-A", limit: 1)).map(\.seq) == [2])
    }

    static let alterations: [(String, String)] = [
        ("DROP TRIGGER events_are_appended", "trigger events_are_appended is missing"),
        ("DROP TRIGGER events_are_not_updated", "trigger events_are_not_updated is missing"),
        ("DROP TRIGGER events_are_not_deleted", "trigger events_are_not_deleted is missing"),
        ("DROP INDEX events_by_type", "index events_by_type is missing"),
        ("DROP INDEX events_by_occurred_at", "index events_by_occurred_at is missing"),
        ("CREATE INDEX events_by_stream ON events (stream)", "there is an index events_by_stream on the engine's table events"),
        ("CREATE TRIGGER sneaky AFTER UPDATE ON chain_head BEGIN SELECT 1; END", "there is a trigger sneaky on chain_head"),
        ("CREATE TRIGGER on_projection AFTER INSERT ON export_runs BEGIN SELECT 1; END", "there is a trigger on_projection on export_runs"),
        ("ALTER TABLE events ADD COLUMN extra TEXT", "table events is not as the engine made it"),
        ("ALTER TABLE events RENAME TO events_real; CREATE VIEW events AS SELECT * FROM events_real WHERE seq <> 5",
         "table events is not as the engine made it (it is now a view)"),
        ("PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, ') STRICT', ')') WHERE name = 'chain_head'",
         "table chain_head is not as the engine made it"),
        ("DROP TABLE event_correlations", "table event_correlations is missing"),
        ("DELETE FROM grdb_migrations WHERE identifier = 'v5-export-runs'", "grdb_migrations records the migrations"),
    ]

    @Test("a schema that is not the engine's is found: dropped triggers and indexes, added ones, a view in place of events, STRICT removed",
          arguments: alterations)
    func schema(sql: String, text: String) throws {
        let victim = try Victim()
        #expect(victim.sqlite(sql) == nil)
        victim.expectProblem(at: nil, "the schema was altered", text)
    }

    @Test("an index that no longer holds the table's values (partial, or over another expression, its SQL edited back) is found")
    func indexes() throws {
        for definition in ["(type, seq) WHERE seq <> 5", "(CASE WHEN seq = 5 THEN 'X' ELSE type END, seq)"] {
            let victim = try Victim()
            #expect(victim.sqlite("""
                DROP INDEX events_by_type; CREATE INDEX events_by_type ON events \(definition);
                PRAGMA writable_schema = ON;
                UPDATE sqlite_master SET sql = 'CREATE INDEX events_by_type ON events (type, seq)' WHERE name = 'events_by_type';
                """) == nil)
            // Queries by type read the index: seq 5 is gone from them.
            #expect(try EventStore(path: victim.path, access: .readOnly).events(EventFilter(type: "T1")).map(\.seq) == [1, 3, 7, 9])
            victim.expectProblem(at: nil, "the index events_by_type does not hold the events' values")
        }
    }

    @Test("tables that are not the engine's (projections, a user's own) are not compared")
    func otherTables() throws {
        let victim = try Victim()
        #expect(victim.sqlite("CREATE TABLE my_notes (x); CREATE INDEX my_notes_x ON my_notes (x); CREATE VIEW my_view AS SELECT * FROM events") == nil)
        #expect(victim.failure() == nil)
    }
}
