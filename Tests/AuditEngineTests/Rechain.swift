import Foundation
import GRDB

@testable import AuditEngine

/// A consistent rewrite of the log, as an attacker with write access to the file makes
/// one (the findings' rechain.py): `edit` (SQL) changes stored events, then every hash
/// from `fromSeq` on is recomputed and the head record moved to the last event. The
/// triggers are dropped for the edit and put back as they were, so `verify` cannot
/// tell. Run it while no `EventStore` of the file is writing.
func rechain(_ path: String, fromSeq: Int64 = 1, edit: String) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.write { db in
        let triggers = try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        for trigger in triggers { try db.execute(sql: "DROP TRIGGER \(ReadModel.quote(trigger["name"]))") }
        try db.execute(sql: edit)
        var previous = fromSeq <= 1
            ? EventHash.genesis : [UInt8](try Data.fetchOne(db, sql: "SELECT hash FROM events WHERE seq = ?", arguments: [fromSeq - 1])!)
        var hasher = EventHash()
        var last = fromSeq - 1
        let rows = try Row.fetchAll(db, sql: "SELECT * FROM events WHERE seq >= ? ORDER BY seq", arguments: [fromSeq])
        for row in rows {
            let hash = hasher.hash(
                previous: previous, seq: row["seq"], id: row["id"], stream: row["stream"], version: row["version"], type: row["type"],
                occurredAt: row["occurred_at"], recordedAt: row["recorded_at"], data: row["data"], meta: row["meta"])
            try db.execute(sql: "UPDATE events SET hash = ? WHERE seq = ?", arguments: [Data(hash), row["seq"] as Int64])
            previous = hash
            last = row["seq"]
        }
        try db.execute(sql: "UPDATE chain_head SET seq = ?, hash = ?", arguments: [last, Data(previous)])
        for trigger in triggers { try db.execute(sql: trigger["sql"] as String) }
    }
}
