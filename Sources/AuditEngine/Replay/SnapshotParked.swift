import GRDB

/// A key parked at a snapshot's seq: as its table had it then (`ParkedKeys`).
struct SnapshotParkedKey: Sendable, Equatable {
    var key: String
    var firstSeq: Int64
    var error: String
    var parkedAt: String
}

/// The parked set of each snapshot of a parking projection, so that a fold from a
/// snapshot starts with the keys parked at its seq, as a fold from seq 1 would have
/// them there (schema v12).
///
/// Each snapshot stores its parked keys whole (`audit_snapshot_parked`: a parked set is
/// small, and thinning then only deletes a dropped snapshot's rows), and counts them
/// (`audit_snapshot_parked_sets`, checked when it is used; a snapshot without a count
/// was taken by a build that did not record parked sets). The dead letters of the chain's parked
/// keys up to its last snapshot are stored once per (key, seq), for the whole chain
/// (`audit_snapshot_dead_letters`): a parked key's dead letters are its events from its
/// first seq on, whichever snapshot saw them, so the snapshot at S has those of its keys
/// from each one's first seq to S. A rebuild from it restores them into its table's
/// dead letters, so that `audit dead-letters` lists what a rebuild from seq 1 gives.
enum SnapshotParked {
    /// Records the keys `table` has parked at `seq` for the snapshot of `chain` being
    /// taken there (before its row is written, in the checkpoint's transaction, after the
    /// table's write), with their dead letters up to `seq`: the table's, and `pending`
    /// (folded past but not written to the table yet).
    /// - Complexity: the parked keys, plus the dead letters since the previous snapshot
    ///   of each key parked then as now (all of them for a key parked since).
    static func record(_ db: Database, chain: Int64, seq: Int64, table: String, pending: [(key: String, seq: Int64)]) throws {
        try db.execute(
            sql: """
                INSERT INTO audit_snapshot_parked (chain, seq, key, first_seq, error, parked_at)
                SELECT ?1, ?2, key, first_seq, error, parked_at FROM audit_parked_keys WHERE projection = ?3 AND first_seq <= ?2
                """,
            arguments: [chain, seq, table])
        let count = db.changesCount
        try db.execute(sql: "INSERT INTO audit_snapshot_parked_sets (chain, seq, keys) VALUES (?, ?, ?)", arguments: [chain, seq, count])
        guard count > 0 else { return }
        let previous = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM snapshots WHERE chain = ? AND seq < ?", arguments: [chain, seq]) ?? 0
        // A key parked at the previous snapshot with the same first seq has its dead
        // letters up to there in the chain already.
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO audit_snapshot_dead_letters (chain, key, seq)
                SELECT p.chain, d.key, d.seq FROM audit_snapshot_parked p
                JOIN audit_dead_letters d ON d.projection = ?3 AND d.key = p.key AND d.seq >= p.first_seq AND d.seq <= p.seq
                WHERE p.chain = ?1 AND p.seq = ?2 AND d.seq > coalesce(
                    (SELECT q.seq FROM audit_snapshot_parked q WHERE q.chain = p.chain AND q.seq = ?4 AND q.key = p.key AND q.first_seq = p.first_seq), 0)
                """,
            arguments: [chain, seq, table, previous])
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO audit_snapshot_dead_letters (chain, key, seq) VALUES (?, ?, ?)")
        for letter in pending where letter.seq <= seq {
            try insert.execute(arguments: [chain, letter.key, letter.seq])
        }
    }

    /// The keys parked at `snapshot`, by key; nil when it did not record them (taken
    /// before v12) or its rows are not the count it recorded.
    static func keys(_ db: Database, schema: String, _ snapshot: SnapshotRecord) throws -> [SnapshotParkedKey]? {
        guard try db.tableExists("audit_snapshot_parked_sets", in: schema),  // a database before v12, read as it is
              let count = try Int.fetchOne(
                  db, sql: "SELECT keys FROM \(schema).audit_snapshot_parked_sets WHERE chain = ? AND seq = ?",
                  arguments: [snapshot.chain, snapshot.seq])
        else { return nil }
        guard count > 0 else { return [] }
        let keys = try Row.fetchAll(
            db,
            sql: "SELECT key, first_seq, error, parked_at FROM \(schema).audit_snapshot_parked WHERE chain = ? AND seq = ? ORDER BY key",
            arguments: [snapshot.chain, snapshot.seq]
        ).map { SnapshotParkedKey(key: $0["key"], firstSeq: $0["first_seq"], error: $0["error"], parkedAt: $0["parked_at"]) }
        return keys.count == count ? keys : nil
    }

    /// Gives `table` (a build starting from `view`, with no parked keys yet) the keys
    /// parked at the snapshot and their dead letters up to its seq.
    static func restore(_ db: Database, _ view: SnapshotView, into table: String, schema: String) throws {
        guard !view.parked.isEmpty else { return }
        try db.execute(
            sql: """
                INSERT INTO audit_parked_keys (projection, key, first_seq, error, parked_at)
                SELECT ?, key, first_seq, error, parked_at FROM \(schema).audit_snapshot_parked WHERE chain = ? AND seq = ?
                """,
            arguments: [table, view.chain, view.seq])
        try db.execute(
            sql: """
                INSERT INTO audit_dead_letters (projection, key, seq)
                SELECT ?, d.key, d.seq FROM \(schema).audit_snapshot_parked p
                JOIN \(schema).audit_snapshot_dead_letters d ON d.chain = p.chain AND d.key = p.key AND d.seq >= p.first_seq AND d.seq <= p.seq
                WHERE p.chain = ? AND p.seq = ?
                """,
            arguments: [table, view.chain, view.seq])
    }

    /// Forgets what the snapshot of `chain` at `seq` recorded (thinning dropped it).
    static func forget(_ db: Database, chain: Int64, seq: Int64) throws {
        for table in ["audit_snapshot_parked_sets", "audit_snapshot_parked"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE chain = ? AND seq = ?", arguments: [chain, seq])
        }
    }

    /// Forgets what the snapshots of `chain` from `fromSeq` on recorded, and the chain's
    /// dead letters from there (those snapshots are deleted; the earlier ones need none).
    static func forget(_ db: Database, chain: Int64, fromSeq: Int64 = .min) throws {
        for table in ["audit_snapshot_parked_sets", "audit_snapshot_parked", "audit_snapshot_dead_letters"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE chain = ? AND seq >= ?", arguments: [chain, fromSeq])
        }
    }
}
