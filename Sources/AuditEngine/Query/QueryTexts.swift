import Crypto
import GRDB

/// A saved query's text as a writer that ran it recorded it (`QueryTexts`).
public struct RecordedQuery: Sendable, Equatable {
    public var name: String
    public var text: String
    /// The SHA-256 of the text's UTF-8 bytes, in hex.
    public var sha256: String
    /// The seq and time of its `QueryRecorded` event.
    public var seq: Int64
    public var recordedAt: String
}

/// The texts of the saved queries that writers ran — query exports (scheduled or not)
/// and `audit report` on a database it can write — so that `--as-reported` reruns the
/// text of the time. A text is stored once in `audit_code` (content-addressed, like the
/// projections' code) and announced by a `QueryRecorded` event on the system stream
/// `audit-query-NAME` when it differs from the text last recorded for NAME: the hash
/// chain covers which text was in use from when.
///
/// Cost: one indexed lookup per run; one event and one row per new text.
enum QueryTexts {
    static let eventType = "QueryRecorded"

    static func stream(_ name: String) -> String { "audit-query-" + name }

    static func sha256(_ text: String) -> String { Hex.encode(Array(SHA256.hash(data: Array(text.utf8)))) }

    /// Records `text` as saved query `name`'s, in write transaction `db`, unless it is
    /// the text recorded last.
    ///
    /// - Returns: whether it was recorded now.
    @discardableResult
    static func record(_ db: Database, store: EventStore, name: String, text: String, path: String, actor: String) throws -> Bool {
        let hash = sha256(text)
        if try latest(db, name: name, at: nil)?.sha256 == hash { return false }
        try CodeHistory.storeText(db, text: text, sha256: hash, path: path)
        try store.appendSystemEvent(
            db, stream: stream(name), type: eventType,
            data: .object([JSONMember("name", .string(name)), JSONMember("path", .string(path)), JSONMember("sha256", .string(hash))]),
            actor: actor)
        return true
    }

    /// The text of `name` recorded last at or before `time` (nil: the last of all).
    ///
    /// - Throws: `StoreError.integrity` when the stored text does not match the hash its
    ///   event gives (the record was altered outside the engine).
    static func latest(_ db: Database, name: String, at time: Timestamp?) throws -> RecordedQuery? {
        guard try db.tableExists("audit_code") else { return nil }
        var sql = "SELECT seq, recorded_at, data FROM events WHERE stream = ? AND type = ?"
        var arguments: StatementArguments = [stream(name), eventType]
        if let time {
            sql += " AND recorded_at <= ?"
            _ = arguments.append(contentsOf: [time.description])
        }
        guard let row = try Row.fetchOne(db, sql: sql + " ORDER BY seq DESC LIMIT 1", arguments: arguments) else { return nil }
        let seq: Int64 = row["seq"]
        guard let data = try? JSONParser.parse(row["data"] as String), let hash = data["sha256"]?.stringValue else {
            throw StoreError.integrity(seq: seq, reason: "the QueryRecorded event of query \(name) names no text: the record was altered")
        }
        guard let text = try String.fetchOne(db, sql: "SELECT content FROM audit_code WHERE sha256 = ?", arguments: [hash]),
              sha256(text) == hash
        else {
            throw StoreError.integrity(seq: seq, reason: "the text of query \(name) recorded at seq \(seq) (SHA-256 \(hash)) is not in audit_code as recorded: the record was altered")
        }
        return RecordedQuery(name: name, text: text, sha256: hash, seq: seq, recordedAt: row["recorded_at"])
    }
}

extension EventStore {
    /// The text of saved query `name` recorded last at or before `time` (nil: the last
    /// of all), or nil when none was.
    public func recordedQuery(_ name: String, at time: Timestamp? = nil) throws -> RecordedQuery? {
        try readTransaction { db in try QueryTexts.latest(db, name: name, at: time) }
    }

    /// Records saved query `name`'s text (see `QueryTexts`), as a writer that runs it does.
    ///
    /// - Returns: whether it differed from the text recorded last, and so was recorded.
    @discardableResult
    public func recordQuery(_ name: String, text: String, path: String, actor: String) throws -> Bool {
        try writeTransaction { db in try QueryTexts.record(db, store: self, name: name, text: text, path: path, actor: actor) }
    }
}
