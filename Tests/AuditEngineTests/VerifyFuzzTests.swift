import Foundation
import GRDBSQLite
import Testing

@testable import AuditEngine

/// `verify` must never trap: whatever was done to the file (values of any storage
/// class in any column, rows removed or added, the schema changed, bytes of the file
/// flipped, the file cut short), it ends with a report (exit 0) or an integrity
/// failure (exit 4). Seeded: a failing case prints its seed, and
/// `AUDIT_FUZZ_SEED=<seed>` repeats a run.
@Suite("verify under random damage")
struct VerifyFuzzTests {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["AUDIT_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x5EED_2022

    /// The victim's file, in rollback-journal mode: a copy then needs no -wal, so each
    /// case costs little more than its mutation and the verification.
    static func base() throws -> Data {
        let victim = try Victim()
        _ = try sqlite3CLI(victim.path, "PRAGMA journal_mode = DELETE")
        return try Data(contentsOf: URL(fileURLWithPath: victim.path))
    }

    @Test("2,000 random mutations, verified in this process: a report or an integrity failure, nothing else")
    func inProcess() throws {
        print("verify fuzz: seed \(Self.seed) (AUDIT_FUZZ_SEED=\(Self.seed) repeats it)")
        let bytes = try Self.base()
        let scratch = TempDir()
        var outcomes = (ok: 0, damaged: 0, newer: 0)
        for index in 0..<2_000 {
            let caseSeed = Self.seed &+ UInt64(index) &* 0x9E37_79B9
            let path = scratch.file("case-\(index % 4).db")
            let description = try Mutation.apply(seed: caseSeed, base: bytes, to: path)
            do {
                // The library's non-throwing form: Swift Testing records a backtrace
                // for every error thrown, which would cost more than the checks.
                switch try EventStore.check(path: path, progress: nil) {
                case .success: outcomes.ok += 1
                case .failure: outcomes.damaged += 1
                }
            } catch StoreError.schemaTooNew {
                outcomes.newer += 1  // a later build's migration recorded: "upgrade audit", exit 1
            } catch {
                Issue.record("case seed \(caseSeed) (\(description)): verify failed otherwise: \(error)")
            }
        }
        print("verify fuzz: \(outcomes.ok) verified, \(outcomes.damaged) damaged, \(outcomes.newer) made by a later build")
        #expect(outcomes.damaged > 1_000)
    }

    @Test("mutations verified by the audit binary: exit 0 or 4, never a signal")
    func throughTheBinary() throws {
        let bytes = try Self.base()
        let scratch = TempDir()
        let only = ProcessInfo.processInfo.environment["AUDIT_FUZZ_CASE"].flatMap(Int.init)
        for index in only.map({ [$0] }) ?? Array(0..<40) {
            let caseSeed = Self.seed &+ UInt64(index) &* 0x9E37_79B9
            let path = scratch.file("binary-\(index).db")
            let description = try Mutation.apply(seed: caseSeed, base: bytes, to: path)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: auditBinary)
            process.arguments = ["--db", path, "verify"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            let newer = description.contains("v99-future")
            #expect(process.terminationReason == .exit && ([0, 4].contains(process.terminationStatus) || newer && process.terminationStatus == 1),
                    "case \(index), seed \(caseSeed) (\(description)): status \(process.terminationStatus), \(process.terminationReason == .exit ? "exited" : "killed by a signal")")
        }
    }
}

/// One random mutation of a copy of a database.
enum Mutation {
    /// Writes `base` to `path`, damages it as `seed` decides and says how.
    static func apply(seed: UInt64, base: Data, to path: String) throws -> String {
        var rng = SplitMix64(seed: seed)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        try base.write(to: URL(fileURLWithPath: path))
        var done: [String] = []
        for _ in 0...Int(rng.next() % 3) {
            switch rng.next() % 10 {
            case 0...4: done.append(try value(&rng, path))
            case 5: done.append(try rows(&rng, path))
            case 6: done.append(try schema(&rng, path))
            default: done.append(try fileBytes(&rng, path))
            }
        }
        return done.joined(separator: "; ")
    }

    static let tables: [(String, [String])] = [
        ("events", ["seq", "id", "stream", "version", "type", "occurred_at", "recorded_at", "data", "meta", "hash"]),
        ("chain_head", ["singleton", "seq", "hash", "recorded_at"]),
        ("event_correlations", ["correlation_id", "seq"]),
        ("grdb_migrations", ["identifier"]),
    ]

    /// Runs SQL on the file with no guard in the way: a plain connection, without
    /// defensive mode, opened for this SQL alone (so that a schema edited through
    /// `writable_schema` is read anew by the next).
    private static func edit(_ path: String, _ sql: String) {
        var connection: OpaquePointer?
        defer { sqlite3_close_v2(connection) }
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else { return }
        _ = sqlite3_exec(connection, sql, nil, nil, nil)
    }

    /// Lifts every constraint of the log's tables, so that any value fits.
    private static func loosen(_ path: String) {
        edit(path, """
            DROP TRIGGER IF EXISTS events_are_not_updated; DROP TRIGGER IF EXISTS events_are_not_deleted;
            DROP TRIGGER IF EXISTS events_are_appended;
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = replace(replace(replace(replace(sql, ') STRICT', ')'), 'NOT NULL', ''),
                'CHECK (length(hash) = 32)', ''), 'CHECK (singleton = 1)', '')
                WHERE name IN ('events', 'chain_head', 'event_correlations');
            PRAGMA writable_schema = OFF;
            """)
    }

    private static func randomValue(_ rng: inout SplitMix64) -> String {
        func bytes(_ count: Int) -> String { (0..<count).map { _ in String(format: "%02x", rng.next() % 256) }.joined() }
        switch rng.next() % 14 {
        case 0: return "NULL"
        case 1: return String(Int64(bitPattern: rng.next()))
        case 2: return ["0", "-1", "1", "9223372036854775807", "-9223372036854775808", "10", "8"][Int(rng.next() % 7)]
        case 3: return ["0.5", "-0.0", "1e308", "-1e-308", "2.0", "9.5"][Int(rng.next() % 6)]
        case 4: return "x'\(bytes(Int(rng.next() % 40)))'"
        case 5: return "zeroblob(\(rng.next() % 64))"
        case 6: return "CAST(x'\(bytes(Int(rng.next() % 24)))' AS TEXT)"
        case 7: return ["''", "'x'", "'{}'", "'{\"correlation_id\":\"corr-A\"}'", "'[[[[[[[[[['", "'\\u0000'"][Int(rng.next() % 6)]
        case 8: return "CAST(\(["id", "stream", "type", "data", "meta", "hash"][Int(rng.next() % 6)]) AS BLOB)"
        case 9: return "hex(hash)"
        case 10: return "randomblob(100000)"
        case 11: return "substr(data, 2)"
        case 12: return "'2024-01-0' || (seq % 10) || 'T00:00:00.000Z'"
        default: return "(SELECT hash FROM events ORDER BY random() LIMIT 1)"
        }
    }

    private static func value(_ rng: inout SplitMix64, _ path: String) throws -> String {
        let (table, columns) = tables[Int(rng.next() % UInt64(tables.count))]
        let column = columns[Int(rng.next() % UInt64(columns.count))]
        let value = randomValue(&rng)
        let which = rng.next() % 3 == 0 ? "" : " WHERE rowid = (SELECT rowid FROM \(table) ORDER BY random() LIMIT 1)"
        loosen(path)
        let sql = "UPDATE \(table) SET \(column) = \(value)\(which)"
        edit(path, sql)
        return sql
    }

    private static func rows(_ rng: inout SplitMix64, _ path: String) throws -> String {
        let sql = [
            "DELETE FROM events WHERE seq = \(1 + rng.next() % 9)",
            "DELETE FROM events WHERE seq > \(rng.next() % 9)",
            "INSERT INTO events SELECT \(Int64(bitPattern: rng.next()) % 20), id || 'x', stream, version + 5, type, occurred_at, recorded_at, data, meta, hash FROM events LIMIT 1",
            "INSERT INTO chain_head SELECT * FROM chain_head",
            "DELETE FROM chain_head",
            "DELETE FROM event_correlations",
            "INSERT INTO event_correlations VALUES ('corr-A', \(Int64(bitPattern: rng.next())))",
            "DELETE FROM grdb_migrations WHERE rowid = (SELECT rowid FROM grdb_migrations ORDER BY random() LIMIT 1)",
            "INSERT INTO grdb_migrations VALUES ('v99-future')",
            "UPDATE events SET seq = -seq WHERE seq = \(1 + rng.next() % 9)",
        ][Int(rng.next() % 10)]
        loosen(path)
        edit(path, sql)
        return sql
    }

    private static func schema(_ rng: inout SplitMix64, _ path: String) throws -> String {
        let sql = [
            "DROP INDEX events_by_type", "DROP TABLE event_correlations", "DROP TABLE chain_head",
            "ALTER TABLE events RENAME TO old_events; CREATE VIEW events AS SELECT * FROM old_events",
            "ALTER TABLE events RENAME COLUMN data TO payload", "ALTER TABLE events ADD COLUMN extra",
            "CREATE TABLE events_shadow AS SELECT * FROM events", "DROP TABLE events",
            "PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = 'CREATE TABLE events (seq)' WHERE name = 'events'",
            "PRAGMA writable_schema = ON; DELETE FROM sqlite_master WHERE type = 'index'",
            "PRAGMA writable_schema = ON; UPDATE sqlite_master SET rootpage = rootpage + 1 WHERE name = 'events'",
            "CREATE TRIGGER t AFTER INSERT ON chain_head BEGIN SELECT 1; END",
        ][Int(rng.next() % 12)]
        edit(path, sql)
        return sql
    }

    private static func fileBytes(_ rng: inout SplitMix64, _ path: String) throws -> String {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        guard size > 0 else { return "empty file" }
        switch rng.next() % 5 {
        case 0:
            let cut = rng.next() % size
            try handle.truncate(atOffset: cut)
            return "cut to \(cut) bytes"
        case 1:
            try handle.write(contentsOf: Data((0..<(rng.next() % 5000)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
            return "garbage appended"
        case 2:
            let page = (rng.next() % max(1, size / 16384)) * 16384
            try handle.seek(toOffset: page)
            try handle.write(contentsOf: Data(count: 16384))
            return "page at \(page) zeroed"
        default:
            var flipped: [UInt64] = []
            for _ in 0..<(1 + rng.next() % 8) {
                // Mostly the first pages, where the header, the schema and the log are.
                let offset = rng.next() % 2 == 0 ? rng.next() % min(size, 3 * 16384) : rng.next() % size
                try handle.seek(toOffset: offset)
                try handle.write(contentsOf: Data([UInt8(truncatingIfNeeded: rng.next())]))
                flipped.append(offset)
            }
            return "bytes at \(flipped) changed"
        }
    }
}
