import Foundation
import Testing

@testable import AuditEngine

/// User SQL is one read-only SELECT, WITH or VALUES statement on every path: the live
/// query, the temporal one (its temporary database), query exports now and at a past
/// time, and scheduled query exports; inline and as saved files.
@Suite("User SQL only reads")
struct UserSQLTests {
    /// Statements that are not queries (area 1 of the findings), each refused with
    /// "not a query" before it runs.
    static let notQueries: [String] = [
        "ATTACH DATABASE 'made.db' AS z", "ATTACH DATABASE 'file:uri.db?mode=rwc' AS z", "ATTACH DATABASE 'existing.db' AS b",
        "attach 'made.db' as z", "DETACH main", "DETACH store",
        "SAVEPOINT x", "RELEASE x", "BEGIN", "BEGIN IMMEDIATE", "COMMIT", "END", "ROLLBACK",
        "PRAGMA writable_schema=1", "PRAGMA foreign_keys=OFF", "PRAGMA query_only=0", "PRAGMA journal_mode=DELETE",
        "PRAGMA user_version=99", "PRAGMA store.user_version=99", "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA table_info(events)",
        "CREATE TEMP TABLE x(a)", "CREATE TEMP VIEW v AS SELECT 1", "CREATE TABLE x(a)",
        "CREATE TEMP TRIGGER t AFTER INSERT ON events BEGIN SELECT 1; END",
        "VACUUM", "VACUUM INTO 'vac.db'", "REINDEX", "ANALYZE", "EXPLAIN SELECT 1",
        "DELETE FROM events WHERE seq = 5", "UPDATE events SET data = '{}'", "DELETE FROM events RETURNING *",
        "INSERT INTO events SELECT * FROM events", "INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 7",
        "REPLACE INTO events SELECT * FROM events WHERE seq = 7", "DELETE FROM store.events", "UPDATE store.chain_head SET seq = 1",
        "DROP TABLE totals", "DROP TRIGGER events_are_not_updated",
        "WITH x AS (SELECT 1) DELETE FROM events WHERE seq = 5", "WITH x AS (SELECT 1) INSERT INTO totals SELECT 'k', '{}', 1 FROM x",
        "SELECT 1; DELETE FROM events", "SELECT 1; SELECT 2", "SELECT 1; ATTACH 'made.db' AS z", "SELECT 1;\nCOMMIT",
        "", "   ", "-- nothing but a comment", "/* nothing */", "(SELECT 1)",
    ]

    /// Queries, which run on every path.
    static let queries: [String] = [
        "SELECT count(*) AS n FROM events", "select count(*) as n from events",
        "WITH x AS (SELECT 1 AS n) SELECT n FROM x", "VALUES (1), (2)",
        "SELECT name FROM pragma_table_info('events') LIMIT 1",
        "  -- a leading comment\n/* and a block */ SELECT key FROM totals; -- a trailing one",
        "SELECT 1;",
    ]

    static let counter = "return { on = { Placed = function(s, e) s.n = (s.n or 0) + 1 end }, columns = { n = \"integer\" } }"

    /// A store with events and a replayed projection `totals`, a saved query `q`, and
    /// an existing SQLite file `existing.db` (which ATTACH could open).
    final class Fixture {
        let w: Workspace
        let projection: Projection
        var queries: String { w.dir.file("queries") }

        init() throws {
            w = try Workspace()
            w.projection("totals", UserSQLTests.counter)
            try w.ingest((0..<30).map { eventLine(stream: "s-\($0 % 4)", type: "Placed") })
            projection = try w.load("totals")
            try w.store.replay([projection])
            try FileManager.default.createDirectory(atPath: queries, withIntermediateDirectories: true)
            _ = try sqlite3CLI(w.dir.file("existing.db"), "CREATE TABLE t(a)")
        }

        /// The files in the workspace's folder, and what the database holds.
        func fingerprint() throws -> [String] {
            let db = w.dir.file("audit.db")
            let files = try FileManager.default.contentsOfDirectory(atPath: w.dir.path).filter { !$0.hasPrefix("audit.db") }.sorted()
            let log = try sqlite3CLI(db, """
                SELECT count(*), max(seq), hex(max(hash)) FROM events WHERE stream NOT LIKE 'audit-export-%' AND stream NOT LIKE 'audit-query-%';
                SELECT group_concat(type || name || coalesce(sql, ''), '|') FROM (SELECT * FROM sqlite_master ORDER BY name);
                SELECT count(*), group_concat(key || state) FROM totals;
                PRAGMA user_version; PRAGMA journal_mode;
                """)
            return files + [log]
        }

        /// Runs `sql` on every path; returns what each said (nil: it ran).
        func runEverywhere(_ sql: String) throws -> [(String, String?)] {
            try sql.write(toFile: queries + "/q.sql", atomically: true, encoding: .utf8)
            let saved = try SavedQuery.load("q", from: queries)
            let past = TemporalSelection(asOf: nil, knownAt: try Timestamp(rfc3339: "2100-01-01T00:00:00Z"))
            let asOf = TemporalSelection(asOf: try Timestamp(rfc3339: "2100-01-01T00:00:00Z"), knownAt: nil)
            func outcome(_ body: () throws -> Void) -> String? {
                do {
                    try body()
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let store = w.store
            var results: [(String, String?)] = [
                ("live", outcome { try store.query(sql: saved, header: { _ in }, row: { _ in }) }),
                ("known-at", outcome { try store.query(sql: saved, at: past, projections: [projection], header: { _ in }, row: { _ in }) }),
                ("as-of", outcome { try store.query(sql: saved, at: asOf, projections: [projection], header: { _ in }, row: { _ in }) }),
            ]
            for (label, time) in [("export", nil), ("export --known-at", past.knownAt)] {
                let out = w.dir.file("x-\(UUID().uuidString)")
                results.append((label, outcome {
                    _ = try store.export(ExportRequest(
                        name: "q", content: .query(QuerySelection(name: "q", sql: saved, knownAt: time, projections: [projection])),
                        destination: .directory(out)))
                }))
                if results.last!.1 != nil { #expect(!FileManager.default.fileExists(atPath: out), "\(label): \(sql)") }
                try? FileManager.default.removeItem(atPath: out)
            }
            let config = try ScheduleConfig.parse(
                "[exports.scheduled]\nwhat = \"query:q\"\ndestination = \"sched\"\nschedule = \"@hourly\"\n", file: w.dir.file("audit.toml"))
            let clock = FakeClock("2030-01-01T00:00:00Z")
            let scheduled = try ExportScheduler(store: store, config: config, clock: clock).runDue()
            for outcome in scheduled {
                if case .failure(let error) = outcome.result { results.append(("scheduled", error.message)) } else { results.append(("scheduled", nil)) }
            }
            try? FileManager.default.removeItem(atPath: w.dir.file("sched"))
            return results
        }
    }

    @Test("a statement that is not a query is refused on every path, and changes nothing", arguments: notQueries)
    func refused(sql: String) throws {
        let f = try Fixture()
        let before = try f.fingerprint()
        let results = try f.runEverywhere(sql)
        #expect(results.count == 6)
        for (path, error) in results {
            #expect(error?.contains("not a query: ") == true, "\(path): \(sql): \(error ?? "it ran")")
            #expect(error?.contains("Database.execute") != true && error?.contains("Transaction was aborted") != true, "\(path): \(error!)")
        }
        #expect(try f.fingerprint() == before)
        #expect(try f.w.store.verify().events > 0)
        // A failed export says why in the log.
        for record in try f.w.store.events(EventFilter(type: "ExportFailed")) {
            #expect(record.data.contains("not a query"), "\(record.data)")
        }
    }

    @Test("a query runs on every path", arguments: queries)
    func allowed(sql: String) throws {
        let f = try Fixture()
        let before = try f.fingerprint()
        for (path, error) in try f.runEverywhere(sql) {
            #expect(error == nil, "\(path): \(sql): \(error!)")
        }
        #expect(try f.fingerprint() == before)
    }

    @Test("the first keyword is found after whitespace and comments", arguments: [
        ("select 1", "SELECT"), ("\n\t -- x\n  /* y */WITH a AS (SELECT 1) SELECT 1", "WITH"), ("VALUES(1)", "VALUES"),
        ("/* unterminated", nil), ("-- x", nil), ("", nil), ("(SELECT 1)", "("), ("pragma x", "PRAGMA"), ("SELECT*FROM t", "SELECT"),
    ] as [(String, String?)])
    func firstKeyword(sql: String, keyword: String?) {
        #expect(UserSQL.firstKeyword(sql) == keyword)
    }

    @Test("the temporal path's temporary database attaches nothing but the store, and leaves no file")
    func temporaryDatabase() throws {
        let f = try Fixture()
        let states = try TemporaryStates(storePath: f.w.dir.file("audit.db"))
        let made = f.w.dir.file("made.db")
        #expect(throws: (any Error).self) {
            try states.readStates { db in try db.execute(sql: "ATTACH DATABASE ? AS z", arguments: [made]) }
        }
        #expect(!FileManager.default.fileExists(atPath: made))
        let path = try states.readStates { db in try String.fetchOne(db, sql: "SELECT file FROM pragma_database_list WHERE name = 'main'") }
        #expect(path == "", "a named scratch file: \(path ?? "nil")")
    }
}
