import AuditEngine
import Foundation
import GRDBSQLite

/// The engine's ingest against a bare SQLite insert of the same rows into the same
/// schema (same indexes, same pragmas, one transaction).
enum IngestBenchmark {
    /// Child: the engine ingests `file` into a new database at `db`.
    static func engine(file: String, db: String) throws -> Measurement {
        let store = try EventStore(path: db, create: true)
        var summary: IngestSummary?
        let seconds = try Measure.time { summary = try store.ingest(path: file) }
        return Measurement(name: "engine ingest", events: summary!.appended, seconds: seconds, peakRSSMB: Measure.peakRSSMB())
    }

    /// Child: bare SQLite. Rows are parsed and materialised before the clock starts;
    /// only the inserts and the commit are timed.
    static func bare(file: String, db: String) throws -> Measurement {
        // The same schema, made by the engine's migrations.
        _ = try EventStore(path: db, create: true)
        let rows = try materialise(file)
        var handle: OpaquePointer?
        guard sqlite3_open(db, &handle) == SQLITE_OK else { throw BenchError("cannot open \(db)") }
        defer { sqlite3_close(handle) }
        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA cache_size = -65536"] {
            try exec(handle, pragma)
        }
        var stmt: OpaquePointer?
        // OR FAIL, as the engine's: the same work for SQLite under the append-only trigger.
        let sql = "INSERT OR FAIL INTO events (seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash) VALUES (?,?,?,?,?,?,?,?,?,?)"
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK else { throw BenchError("prepare failed") }
        defer { sqlite3_finalize(stmt) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        let hash = [UInt8](repeating: 7, count: 32)
        let recordedAt = Timestamp.now().description
        let seconds = try Measure.time {
            try exec(handle, "BEGIN IMMEDIATE")
            for (i, row) in rows.enumerated() {
                sqlite3_reset(stmt)
                sqlite3_bind_int64(stmt, 1, Int64(i + 1))
                sqlite3_bind_text(stmt, 2, row.id, -1, transient)
                sqlite3_bind_text(stmt, 3, row.stream, -1, transient)
                sqlite3_bind_int64(stmt, 4, row.version)
                sqlite3_bind_text(stmt, 5, row.type, -1, transient)
                sqlite3_bind_text(stmt, 6, row.occurredAt, -1, transient)
                sqlite3_bind_text(stmt, 7, recordedAt, -1, transient)
                sqlite3_bind_text(stmt, 8, row.data, -1, transient)
                sqlite3_bind_text(stmt, 9, "{}", -1, transient)
                sqlite3_bind_blob(stmt, 10, hash, 32, transient)
                guard sqlite3_step(stmt) == SQLITE_DONE else { throw BenchError("insert failed at row \(i + 1)") }
            }
            try exec(handle, "COMMIT")
        }
        return Measurement(name: "bare SQLite insert", events: rows.count, seconds: seconds, peakRSSMB: Measure.peakRSSMB())
    }

    private struct Row {
        var id, stream, type, occurredAt, data: String
        var version: Int64
    }

    private static func materialise(_ file: String) throws -> [Row] {
        var rows: [Row] = []
        var versions: [String: Int64] = [:]
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for line in text.split(separator: "\n") {
            let value = try JSONParser.parse(String(line))
            let stream = value["stream"]!.stringValue!
            let version = (versions[stream] ?? 0) + 1
            versions[stream] = version
            rows.append(Row(
                id: value["id"]!.stringValue!, stream: stream, type: value["type"]!.stringValue!,
                occurredAt: value["occurred_at"]!.stringValue!, data: CanonicalJSON.string(value["data"]!),
                version: version))
        }
        return rows
    }

    private static func exec(_ handle: OpaquePointer?, _ sql: String) throws {
        guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else {
            throw BenchError("\(sql): \(String(cString: sqlite3_errmsg(handle)))")
        }
    }
}
