import Crypto
import Foundation
import GRDB

/// One attempt of a named export, as the `export_runs` table records it.
public struct ExportRunRecord: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Writing its files (or killed while it was).
        case started
        /// Its directory was complete and about to be renamed into place.
        case pending
        case completed
        case failed
    }

    public var id: Int64
    public var name: String
    public var run: Int64
    public var status: Status
    public var incremental: Bool
    /// The selection's identity (kind, filters, format), so that an incremental series
    /// cannot silently change what it selects.
    public var selection: String
    public var directory: String
    public var partial: String
    public var fromSeq: Int64
    public var toSeq: Int64
    public var rows: Int64?
    public var manifestSHA256: String?
    public var scheduledFor: Timestamp?
    public var startedAt: Timestamp
    public var finishedAt: Timestamp?
    public var error: String?
}

enum ExportRuns {
    /// The system stream an export's outcomes are appended to.
    static func stream(_ name: String) -> String { "audit-export-" + name }
    /// The event retention appends for each run directory it removes.
    static let removedType = "ExportRunRemoved"

    static func record(_ row: Row) -> ExportRunRecord {
        func time(_ text: String?) -> Timestamp? { text.flatMap { try? Timestamp(rfc3339: $0) } }
        return ExportRunRecord(
            id: row["id"], name: row["name"], run: row["run"], status: ExportRunRecord.Status(rawValue: row["status"]) ?? .failed,
            incremental: row["incremental"], selection: row["selection"], directory: row["directory"], partial: row["partial"],
            fromSeq: row["from_seq"], toSeq: row["to_seq"], rows: row["rows"], manifestSHA256: row["manifest_sha256"],
            scheduledFor: time(row["scheduled_for"]), startedAt: time(row["started_at"]) ?? Timestamp(milliseconds: 0),
            finishedAt: time(row["finished_at"]), error: row["error"])
    }

    static func lastCompleted(_ db: Database, name: String) throws -> ExportRunRecord? {
        try Row.fetchOne(
            db, sql: "SELECT * FROM export_runs WHERE name = ? AND status = 'completed' ORDER BY run DESC LIMIT 1", arguments: [name]
        ).map(record)
    }

    static func unfinished(_ db: Database, name: String) throws -> [ExportRunRecord] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM export_runs WHERE name = ? AND status IN ('started', 'pending') ORDER BY id", arguments: [name]
        ).map(record)
    }

    static func insertStarted(_ db: Database, _ r: ExportRunRecord) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO export_runs (name, run, status, incremental, selection, directory, partial, from_seq, to_seq, scheduled_for, started_at)
                VALUES (?, ?, 'started', ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                r.name, r.run, r.incremental, r.selection, r.directory, r.partial, r.fromSeq, r.toSeq, r.scheduledFor?.description,
                r.startedAt.description,
            ])
        return db.lastInsertedRowID
    }

    static func markPending(_ db: Database, id: Int64, rows: Int64, manifestSHA256: String) throws {
        try db.execute(
            sql: "UPDATE export_runs SET status = 'pending', rows = ?, manifest_sha256 = ? WHERE id = ?",
            arguments: [rows, manifestSHA256, id])
    }

    static func finish(_ db: Database, id: Int64, status: ExportRunRecord.Status, error: String? = nil) throws {
        try db.execute(
            sql: "UPDATE export_runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
            arguments: [status.rawValue, error, Timestamp.now().description, id])
    }
}

extension EventStore {
    /// Records a scheduled run that failed before it could start (its query or key
    /// could not be read, its selection was refused): a `failed` row for `slot`, so the
    /// slot counts as attempted, and an `ExportFailed` event in the log.
    package func recordExportFailure(name: String, slot: Timestamp, error: String) throws {
        try writeTransaction { db in
            let run = (try ExportRuns.lastCompleted(db, name: name)?.run ?? 0) + 1
            let now = Timestamp.now().description
            try db.execute(
                sql: """
                    INSERT INTO export_runs (name, run, status, incremental, selection, directory, partial, from_seq, to_seq,
                                             scheduled_for, started_at, finished_at, error)
                    VALUES (?, ?, 'failed', 0, '', '', '', 0, 0, ?, ?, ?, ?)
                    """,
                arguments: [name, run, slot.description, now, now, error])
            guard db.changesCount > 0 else { return }
            try appendExportEvent(db, name: name, type: "ExportFailed", data: [
                JSONMember("run", .int(run)), JSONMember("error", .string(error)), JSONMember("scheduled_for", .string(slot.description)),
            ])
        }
    }

    /// Every recorded attempt of the named export (all exports when nil), oldest first.
    public func exportRuns(name: String? = nil) throws -> [ExportRunRecord] {
        try readTransaction { db in
            if let name {
                return try Row.fetchAll(db, sql: "SELECT * FROM export_runs WHERE name = ? ORDER BY id", arguments: [name]).map(ExportRuns.record)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM export_runs ORDER BY id").map(ExportRuns.record)
        }
    }
}

extension EventStore {
    /// Removes a completed run's directory, recording it first: an `ExportRunRemoved`
    /// event (the run, its directory, its manifest's hash and `reason`) in the export's
    /// stream, so that `verify-export --db` tells a run removed on purpose from one
    /// that went missing. A directory that cannot be removed stays recorded as
    /// removed (harmless: a run present is verified anyway); one removed but not
    /// recorded could not happen.
    package func removeExportRun(directory: String, reason: String) throws {
        let directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        let manifestData = FileManager.default.contents(atPath: directory + "/manifest.json")
        let manifest = manifestData.flatMap { try? ExportManifest(json: [UInt8]($0), source: directory) }
        guard let claimed = manifest.map({ ($0.name, $0.run) }) ?? ExportSeries.claim(directory) else {
            throw ExportError("\(directory) is not a run directory of an export (no manifest, and not named NAME-000001…)")
        }
        try writeTransaction { db in
            try appendExportEvent(db, name: claimed.0, type: ExportRuns.removedType, data: [
                JSONMember("run", .int(claimed.1)), JSONMember("directory", .string(directory)),
                JSONMember("manifest_sha256", manifestData.map { .string(Hex.encode(Array(SHA256.hash(data: $0)))) } ?? .null),
                JSONMember("reason", .string(reason)),
            ])
        }
        do {
            try FileManager.default.removeItem(atPath: directory)
        } catch {
            throw ExportError("cannot remove \(directory): \(error.localizedDescription)")
        }
    }
}
