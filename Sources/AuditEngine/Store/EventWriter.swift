import Foundation
import GRDB

/// Appends prepared events inside one IMMEDIATE write transaction.
///
/// The single place where positions are assigned: `seq` follows the chain head with no
/// gaps, `version` follows the stream's last version, `recorded_at` is one time for the
/// whole transaction and never earlier than the last stored one, and each hash links
/// to the one before. The head row is written by `finish()`, in the same transaction.
///
/// The insert is a raw prepared statement: it is the ingest hot loop (measured: the
/// per-row cost of going through GRDB's argument binding was ~25% of ingest time).
/// It is INSERT OR FAIL: with the default ABORT, SQLite would keep a statement journal
/// for each row under the append-only trigger (see the v8 migration). The trigger
/// ignores a row whose id is stored, which is how the writer finds a re-sent event.
final class EventWriter {
    enum Outcome {
        /// Appended at `seq`; `lastAppended` rebuilds the stored event when wanted.
        case appended(seq: Int64)
        case duplicate(of: StoredEvent)
    }

    private let db: Database
    private let insert: SQLStatement
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

    /// Starts appending after the chain head, which must equal the last stored event.
    ///
    /// - Throws: `StoreError.integrity` when it does not (see `ChainHead.forAppending`).
    init(_ db: Database) throws {
        self.db = db
        let (head, lastRecorded) = try ChainHead.forAppending(db)
        lastSeq = head.seq
        lastHash = head.hash
        logWasEmpty = lastSeq == 0
        var now = Timestamp.now()
        if let lastRecorded, lastRecorded > now {
            now = lastRecorded  // the clock went back: keep recorded_at non-decreasing
        }
        recordedAt = now
        recordedAtText = now.description
        insert = try SQLStatement(db, """
            INSERT OR FAIL INTO events (seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            let index = try SQLStatement(db, "INSERT INTO event_correlations (correlation_id, seq) VALUES (?, ?)", cached: true)
            index.bind(1, text: correlation)
            index.bind(2, seq)
            try index.run()
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
        let update = try SQLStatement(db, "UPDATE chain_head SET seq = ?, hash = ?, recorded_at = ? WHERE singleton = 1")
        update.bind(1, lastSeq)
        update.bind(2, blob: lastHash)
        update.bind(3, text: recordedAtText)
        try update.run()
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
        let lookup = try SQLStatement(db, "SELECT version FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1", cached: true)
        lookup.bind(1, text: stream)
        let stored = try lookup.step() ? lookup.int64(0) : 0
        lookup.reset()
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
        let lookup = try SQLStatement(db, "SELECT \(StoredEvent.columns) FROM events WHERE id = ?", cached: true)
        lookup.bind(1, text: id)
        defer { lookup.reset() }
        return try lookup.step() ? StoredEvent(lookup) : nil
    }

    /// Binds and runs the insert; false when the id already exists.
    private func step(seq: Int64, id: String, event: PreparedEvent, version: Int64, occurred: String, hash: [UInt8]) throws -> Bool {
        insert.reset()
        insert.bind(1, seq)
        insert.bind(2, text: id)
        insert.bind(3, text: event.stream)
        insert.bind(4, version)
        insert.bind(5, text: event.type)
        insert.bind(6, text: occurred)
        insert.bind(7, text: recordedAtText)
        insert.bind(8, text: event.data)
        insert.bind(9, text: event.meta)
        insert.bind(10, blob: hash)
        try insert.run()
        return insert.changes == 1
    }
}

extension StoredEvent {
    /// The columns `init(_:)` reads, in its order.
    static let columns = "seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash"

    /// Reads the current row of a statement selecting `columns`, every text with its
    /// exact length.
    init(_ row: SQLStatement) {
        self.init(
            seq: row.int64(0), id: row.string(1), stream: row.string(2), version: row.int64(3), type: row.string(4),
            occurredAt: (try? Timestamp(rfc3339: row.string(5))) ?? Timestamp(milliseconds: 0),
            recordedAt: (try? Timestamp(rfc3339: row.string(6))) ?? Timestamp(milliseconds: 0),
            data: row.string(7), meta: row.string(8), hash: [UInt8](row.blob(9)))
    }
}
