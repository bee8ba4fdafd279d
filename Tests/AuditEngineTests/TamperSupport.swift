import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// The tamper tests' victim: a store with nine events over three streams, some with a
/// correlation id (a string for seqs 2 and 5, an integer for seq 8), edited afterwards
/// with the sqlite3 tool as someone with write access to the file would.
final class Victim {
    let dir = TempDir()
    let path: String
    static let count: Int64 = 9

    init() throws {
        path = dir.file("audit.db")
        let store = try EventStore(path: path, create: true)
        let lines = (1...Self.count).map { n -> String in
            let meta = n == 2 || n == 5 ? #","meta":{"correlation_id":"corr-A"}"# : n == 8 ? #","meta":{"correlation_id":7}"# : ""
            return #"{"id":"e\#(n)","stream":"s\#(n % 3)","type":"T\#(n % 2)","data":{"n":\#(n)}\#(meta),"occurred_at":"2024-01-0\#(n)T00:00:00Z"}"#
        }
        try store.ingest(path: dir.jsonl("victim.jsonl", lines))
    }

    /// Runs `sql` with the sqlite3 tool; nil on success, else its error output.
    @discardableResult
    func sqlite(_ sql: String) -> String? {
        do {
            _ = try sqlite3CLI(path, sql)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// The drops an attacker needs before editing stored events.
    static let dropGuards = "DROP TRIGGER events_are_not_updated; DROP TRIGGER events_are_not_deleted; DROP TRIGGER events_are_appended;"

    /// `sql` run with the triggers dropped and then made again as they were, so that the
    /// schema is the engine's (which every open but verify's requires): nil on success.
    func withGuardsDropped(_ sql: String) throws -> String? {
        let triggers = try DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
        }
        return sqlite(Self.dropGuards + sql + triggers.map { $0 + ";" }.joined(separator: "\n"))
    }

    /// Turns `table` into a table without STRICT (and without the hash CHECK), as an
    /// attacker with `PRAGMA writable_schema` can, so that any storage class fits.
    func unstrict(_ table: String = "events") {
        let sql = """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = replace(replace(sql, ') STRICT', ')'), 'CHECK (length(hash) = 32)', '') WHERE name = '\(table)';
            PRAGMA writable_schema = OFF;
            """
        #expect(sqlite(sql) == nil)
    }

    /// Every row of the log's tables, as SQL literals: equal before and after means
    /// nothing stored changed.
    func dump() -> String {
        (try? sqlite3CLI(path, """
            SELECT quote(seq), quote(id), quote(stream), quote(version), quote(type), quote(occurred_at), quote(recorded_at),
                   quote(data), quote(meta), quote(hash) FROM events ORDER BY seq;
            SELECT quote(singleton), quote(seq), quote(hash), quote(recorded_at) FROM chain_head;
            SELECT quote(correlation_id), quote(seq) FROM event_correlations ORDER BY seq, correlation_id;
            """)) ?? "unreadable"
    }

    /// What `verify` says: nil when the log verifies, else the failure.
    func failure() -> IntegrityFailure? {
        do {
            _ = try EventStore.verify(path: path)
            return nil
        } catch let failure as IntegrityFailure {
            return failure
        } catch {
            Issue.record("verify failed otherwise than with an integrity failure: \(error)")
            return nil
        }
    }

    /// Expects `verify` to find a problem at `seq` (nil: of the schema or the file)
    /// whose reason contains every one of `texts`.
    func expectProblem(at seq: Int64?, _ texts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        guard let failure = failure() else {
            Issue.record("verify passed", sourceLocation: sourceLocation)
            return
        }
        let found = failure.problems.contains { problem in problem.seq == seq && texts.allSatisfy { problem.reason.contains($0) } }
        #expect(found, "expected a problem at \(seq.map(String.init) ?? "no seq") with \(texts), got: \(failure)", sourceLocation: sourceLocation)
    }
}

/// Makes at `target` the database an older build (schema v7) would hold for the same
/// log: the v7 schema, made by the same migrations, filled with every row of `source`
/// (events, chain head, indexes, catalog, snapshots, exports and projection tables).
func downgradeToV7(_ source: String, _ target: String) throws {
    let queue = try DatabaseQueue(path: target)
    try Schema.migrator.migrate(queue, upTo: "v7-snapshot-chunks")
    try queue.writeWithoutTransaction { db in
        try db.execute(sql: "ATTACH DATABASE ? AS src", arguments: [source])
        let engine = [
            "events", "chain_head", "event_correlations", "projections", "projection_builds", "snapshot_chains", "snapshots",
            "snapshot_chunks", "export_runs",
        ]
        for table in engine {
            if table != "events" { try db.execute(sql: "DELETE FROM main.\(table)") }
            try db.execute(sql: "INSERT INTO main.\(table) SELECT * FROM src.\(table)")
        }
        let others = try Row.fetchAll(db, sql: "SELECT name, sql FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for row in others {
            let name: String = row["name"]
            // Engine tables of later migrations are all named audit_… (DECISIONS 4).
            guard !engine.contains(name), name != "grdb_migrations", !name.hasPrefix("audit_") else { continue }
            try db.execute(sql: row["sql"])
            try db.execute(sql: "INSERT INTO main.\(ReadModel.quote(name)) SELECT * FROM src.\(ReadModel.quote(name))")
        }
        try db.execute(sql: "DETACH DATABASE src")
    }
}

/// The `audit` executable beside this test bundle.
let auditBinary: String = {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
    return dir.appendingPathComponent("audit").path
}()

/// Runs the `audit` binary with `arguments` in `directory`: its status and stderr.
@discardableResult
func runAudit(_ arguments: [String], in directory: String) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: auditBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}
