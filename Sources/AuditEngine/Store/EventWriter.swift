import Foundation
import GRDB
import GRDBSQLite

/// Appends prepared events inside one IMMEDIATE write transaction.
///
/// The single place where positions are assigned: `seq` follows the chain head with no
/// gaps, `version` follows the stream's last version, `recorded_at` is one time for the
/// whole transaction and never earlier than the last stored one, and each hash links
/// to the one before. The head row is written by `finish()`, in the same transaction.
///
/// The insert is a raw prepared statement: it is the ingest hot loop (measured: the
/// per-row cost of going through GRDB's argument binding was ~25% of ingest time).
final class EventWriter {
    enum Outcome {
        /// Appended at `seq`; `lastAppended` rebuilds the stored event when wanted.
        case appended(seq: Int64)
        case duplicate(of: StoredEvent)
    }

    private let db: Database
    private let insert: Statement
    private var hasher = EventHash()
    private(set) var lastSeq: Int64
    private var lastHash: [UInt8]
    private var lastId = ""
    let recordedAt: Timestamp
    private let recordedAtText: String

    /// Stream versions known in this transaction. While `logWasEmpty` and nothing was
    /// evicted, a stream missing here has version 0 and needs no lookup.
    private var versions: [String: Int64] = [:]
    private let logWasEmpty: Bool
    private var evicted = false
    private static let versionCacheLimit = 1_000_000

    private(set) var appendedCount = 0
    private(set) var duplicateCount = 0

    init(_ db: Database) throws {
        self.db = db
        let head = try Row.fetchOne(db, sql: "SELECT seq, hash, recorded_at FROM chain_head WHERE singleton = 1")!
        lastSeq = head["seq"]
        lastHash = [UInt8](head["hash"] as Data)
        logWasEmpty = lastSeq == 0
        let lastRecorded: String = head["recorded_at"]
        var now = Timestamp.now()
        if !lastRecorded.isEmpty, let previous = try? Timestamp(rfc3339: lastRecorded), previous > now {
            now = previous  // the clock went back: keep recorded_at non-decreasing
        }
        recordedAt = now
        recordedAtText = now.description
        insert = try db.makeStatement(sql: """
            INSERT INTO events (seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
            """)
    }

    /// Appends one event, or recognises it as a duplicate of a stored one.
    func write(_ event: PreparedEvent) throws -> Outcome {
        if let id = event.id, event.expectedVersion != .any, let existing = try storedEvent(id: id) {
            // A re-sent event with a version check: the check would fail against itself.
            return try duplicate(event, of: existing)
        }
        let current = try currentVersion(of: event.stream)
        if case .exactly(let expected) = event.expectedVersion, expected != current {
            throw StoreError.versionConflict(stream: event.stream, expected: expected, actual: current)
        }
        let seq = lastSeq + 1
        let version = current + 1
        let id = event.id ?? UUID().uuidString.lowercased()
        let occurredText = event.occurredAtText ?? recordedAtText
        let hash = hasher.hash(
            previous: lastHash, seq: seq, id: id, stream: event.stream, version: version, type: event.type,
            occurredAt: occurredText, recordedAt: recordedAtText, data: event.data, meta: event.meta)

        let inserted = try step(seq: seq, id: id, event: event, version: version, occurred: occurredText, hash: hash)
        if !inserted {
            // The id is taken (earlier in the log or in this same transaction).
            guard let existing = try storedEvent(id: id) else {
                throw StoreError.storage("insert of event id \"\(id)\" was ignored but no such id is stored")
            }
            return try duplicate(event, of: existing)
        }
        if let correlation = event.correlationId {
            try db.cachedStatement(sql: "INSERT INTO event_correlations (correlation_id, seq) VALUES (?, ?)")
                .execute(arguments: [correlation, seq])
        }
        lastSeq = seq
        lastHash = hash
        lastId = id
        remember(event.stream, version: version)
        appendedCount += 1
        return .appended(seq: seq)
    }

    /// The event `write` appended last, as stored.
    func lastAppended(_ event: PreparedEvent) -> StoredEvent {
        StoredEvent(
            seq: lastSeq, id: lastId, stream: event.stream, version: versions[event.stream] ?? 0, type: event.type,
            occurredAt: event.occurredAt ?? recordedAt, recordedAt: recordedAt, data: event.data, meta: event.meta,
            hash: lastHash)
    }

    /// Moves the chain head to the last appended event. Call once, before commit.
    func finish() throws {
        guard appendedCount > 0 else { return }
        try db.execute(
            sql: "UPDATE chain_head SET seq = ?, hash = ?, recorded_at = ? WHERE singleton = 1",
            arguments: [lastSeq, Data(lastHash), recordedAtText])
    }

    private func duplicate(_ event: PreparedEvent, of existing: StoredEvent) throws -> Outcome {
        let same = existing.stream == event.stream && existing.type == event.type && existing.data == event.data
            && existing.meta == event.meta && (event.occurredAt == nil || event.occurredAt == existing.occurredAt)
        guard same else { throw StoreError.idConflict(id: existing.id, existingSeq: existing.seq) }
        duplicateCount += 1
        return .duplicate(of: existing)
    }

    private func currentVersion(of stream: String) throws -> Int64 {
        if let known = versions[stream] { return known }
        if logWasEmpty, !evicted { return 0 }
        let stored = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT version FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1"),
            arguments: [stream]) ?? 0
        remember(stream, version: stored)
        return stored
    }

    private func remember(_ stream: String, version: Int64) {
        if versions.count >= EventWriter.versionCacheLimit {
            // Bound memory on logs with very many streams; lookups take over from here.
            versions.removeAll(keepingCapacity: true)
            evicted = true
        }
        versions[stream] = version
    }

    private func storedEvent(id: String) throws -> StoredEvent? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM events WHERE id = ?"), arguments: [id])
            .map(StoredEvent.init(row:))
    }

    /// Binds and runs the insert; false when the id already exists.
    private func step(seq: Int64, id: String, event: PreparedEvent, version: Int64, occurred: String, hash: [UInt8]) throws -> Bool {
        let stmt = insert.sqliteStatement
        sqlite3_reset(stmt)
        sqlite3_bind_int64(stmt, 1, seq)
        bindText(stmt, 2, id)
        bindText(stmt, 3, event.stream)
        sqlite3_bind_int64(stmt, 4, version)
        bindText(stmt, 5, event.type)
        bindText(stmt, 6, occurred)
        bindText(stmt, 7, recordedAtText)
        bindText(stmt, 8, event.data)
        bindText(stmt, 9, event.meta)
        hash.withUnsafeBytes { _ = sqlite3_bind_blob(stmt, 10, $0.baseAddress, 32, SQLITE_TRANSIENT_DESTRUCTOR) }
        let rc = sqlite3_step(stmt)
        guard rc == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
            sqlite3_reset(stmt)
            throw StoreError.storage("cannot store event seq \(seq) (stream \"\(event.stream)\"): SQLite error \(rc): \(message)")
        }
        return sqlite3_changes(db.sqliteConnection) == 1
    }

    private func bindText(_ stmt: OpaquePointer?, _ index: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buffer in
            if let base = buffer.baseAddress, buffer.count > 0 {
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    _ = sqlite3_bind_text(stmt, index, $0, Int32(buffer.count), SQLITE_TRANSIENT_DESTRUCTOR)
                }
            } else {
                _ = sqlite3_bind_text(stmt, index, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
            }
        }
    }
}

/// SQLite's SQLITE_TRANSIENT: makes SQLite copy a bound value before the call returns.
let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension StoredEvent {
    /// Reads a row of the `events` table.
    init(row: Row) {
        let occurred: String = row["occurred_at"]
        let recorded: String = row["recorded_at"]
        self.init(
            seq: row["seq"], id: row["id"], stream: row["stream"], version: row["version"], type: row["type"],
            occurredAt: (try? Timestamp(rfc3339: occurred)) ?? Timestamp(milliseconds: 0),
            recordedAt: (try? Timestamp(rfc3339: recorded)) ?? Timestamp(milliseconds: 0),
            data: row["data"], meta: row["meta"], hash: [UInt8](row["hash"] as Data))
    }
}
