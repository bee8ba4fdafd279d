import Foundation
import GRDB
import GRDBSQLite

/// One stored snapshot: a projection's states at a checkpoint seq, made by one code.
public struct SnapshotRecord: Sendable, Equatable {
    public var projection: String
    public var version: Int64
    public var codeHash: String
    public var seq: Int64
    /// The largest times of the events folded up to `seq`: the snapshot answers an
    /// `--as-of T` question only if maxOccurredAt <= T (and likewise for known-at).
    public var maxOccurredAt: String
    public var maxRecordedAt: String
    /// Keys in the projection at `seq`.
    public var keys: Int64
    /// Rows and bytes this snapshot stored itself (the keys changed since the one before).
    public var deltaRows: Int64
    public var deltaBytes: Int64
    public var createdAt: String
    /// How long taking it took.
    public var milliseconds: Int64
    let chain: Int64
    let digest: String
}

extension EventStore {
    /// Every stored snapshot, by projection then seq.
    public func snapshots() throws -> [SnapshotRecord] {
        try readTransaction { db in try Snapshots.listAll(db) }
    }

    /// Deletes every snapshot of `projection` (the next rebuild then starts from seq 1).
    public func deleteSnapshots(of projection: String) throws {
        try writeTransaction { db in try Snapshots.dropOtherChains(db, projection: projection, keeping: nil) }
    }
}

/// Snapshots: writing them at checkpoints, thinning them, finding one that can be
/// trusted for a question.
///
/// A chain is one projection's code (name, version, code hash): a snapshot is only ever
/// used by the code that made it. Snapshots are deltas: a snapshot at seq S stores the
/// keys that changed since the chain's previous snapshot, and a key's state at S is
/// its row with the largest seq <= S. Each snapshot records a digest of its rows, and
/// every row of the chain up to S is checked against them before the snapshot is used.
enum Snapshots {
    /// The chain of `projection`'s current code, created when `create`.
    static func chain(_ db: Database, projection: Projection, create: Bool) throws -> Int64? {
        let arguments: StatementArguments = [projection.name, projection.version, projection.codeHash]
        let find = "SELECT id FROM snapshot_chains WHERE projection = ? AND version = ? AND code_hash = ?"
        if let id = try Int64.fetchOne(db, sql: find, arguments: arguments) { return id }
        guard create else { return nil }
        try db.execute(sql: "INSERT INTO snapshot_chains (projection, version, code_hash) VALUES (?, ?, ?)", arguments: arguments)
        return db.lastInsertedRowID
    }

    /// The chain's snapshots, oldest first.
    static func list(_ db: Database, chain: Int64) throws -> [SnapshotRecord] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT s.*, c.projection, c.version, c.code_hash FROM snapshots s JOIN snapshot_chains c ON c.id = s.chain
                WHERE s.chain = ? ORDER BY s.seq
                """,
            arguments: [chain]
        ).map(record(from:))
    }

    /// Every snapshot of every projection, by projection then seq.
    static func listAll(_ db: Database) throws -> [SnapshotRecord] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT s.*, c.projection, c.version, c.code_hash FROM snapshots s JOIN snapshot_chains c ON c.id = s.chain
                ORDER BY c.projection, s.chain, s.seq
                """
        ).map(record(from:))
    }

    private static func record(from row: Row) -> SnapshotRecord {
        SnapshotRecord(
            projection: row["projection"], version: row["version"], codeHash: row["code_hash"], seq: row["seq"],
            maxOccurredAt: row["max_occurred_at"], maxRecordedAt: row["max_recorded_at"], keys: row["keys"],
            deltaRows: row["delta_rows"], deltaBytes: row["delta_bytes"], createdAt: row["created_at"],
            milliseconds: row["milliseconds"], chain: row["chain"], digest: row["digest"])
    }

    /// Takes a snapshot of `table` at `seq`, inside the caller's write transaction, then
    /// thins the chain to `keep`.
    ///
    /// - Parameter changed: the states changed since the chain's last snapshot, when the
    ///   caller knows them (a replay that saw every event since); nil compares every
    ///   state of the table with the last snapshot instead.
    @discardableResult
    static func take(
        _ db: Database, chain: Int64, table: String, seq: Int64, times: FoldedTimes, keep: Int,
        changed: [String: [UInt8]]?
    ) throws -> SnapshotRecord? {
        let started = ContinuousClock.now
        if try Int64.fetchOne(db, sql: "SELECT 1 FROM snapshots WHERE chain = ? AND seq = ?", arguments: [chain, seq]) != nil {
            return nil  // already taken at this position
        }
        let quoted = ReadModel.quote(table)
        var delta = DeltaDigest()
        if let changed {
            let insert = try db.makeStatement(sql: "INSERT INTO snapshot_states (chain, key, seq, state) VALUES (?, ?, ?, ?)")
            let stmt = insert.sqliteStatement
            sqlite3_bind_int64(stmt, 1, chain)
            sqlite3_bind_int64(stmt, 3, seq)
            for (key, state) in changed {
                var key = key
                try key.withUTF8 { k in
                    try state.withUnsafeBytes { s in
                        delta.add(key: UnsafeRawBufferPointer(k), state: s)
                        sqlite3_bind_text(stmt, 2, k.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, Int32(k.count), SQLITE_TRANSIENT_DESTRUCTOR)
                        sqlite3_bind_text(stmt, 4, s.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(s.count), SQLITE_TRANSIENT_DESTRUCTOR)
                        let rc = sqlite3_step(stmt)
                        sqlite3_reset(stmt)
                        guard rc == SQLITE_DONE else {
                            throw StoreError.storage("cannot write a snapshot: SQLite error \(rc): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                        }
                    }
                }
            }
        } else {
            try db.execute(
                sql: """
                    INSERT INTO snapshot_states (chain, key, seq, state)
                    SELECT ?1, t.key, ?2, t.state FROM \(quoted) t
                    WHERE t.state IS NOT (SELECT s.state FROM snapshot_states s
                                          WHERE s.chain = ?1 AND s.key = t.key AND s.seq < ?2 ORDER BY s.seq DESC LIMIT 1)
                    """,
                arguments: [chain, seq])
            delta = try digest(db, chain: chain, seq: seq)
        }
        let keys = try Int64.fetchOne(db, sql: "SELECT count(*) FROM \(quoted)") ?? 0
        let milliseconds = Int64((ContinuousClock.now - started).seconds * 1000)
        try db.execute(
            sql: """
                INSERT INTO snapshots (chain, seq, max_occurred_at, max_recorded_at, keys, delta_rows, delta_bytes, digest,
                                       created_at, milliseconds)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                chain, seq, times.maxOccurredAt, times.maxRecordedAt, keys, delta.rows, delta.bytes, delta.hex,
                Timestamp.now().description, milliseconds,
            ])
        try thin(db, chain: chain, keep: keep)
        return try list(db, chain: chain).first { $0.seq == seq }
    }

    /// Drops snapshots beyond `keep`, each time the one (never the last, and the first
    /// only when one is kept) whose loss leaves the smallest gap in seq, so the kept ones stay spread over the
    /// log. Its rows that a later snapshot still needs move into the next snapshot.
    static func thin(_ db: Database, chain: Int64, keep: Int) throws {
        var seqs = try Int64.fetchAll(db, sql: "SELECT seq FROM snapshots WHERE chain = ? ORDER BY seq", arguments: [chain])
        while seqs.count > max(keep, 1) {
            var drop = 0  // with two left and one to keep: the older goes
            if seqs.count > 2 {
                drop = 1
                for i in 1..<(seqs.count - 1) where seqs[i + 1] - seqs[i - 1] < seqs[drop + 1] - seqs[drop - 1] {
                    drop = i
                }
            }
            let (dropped, next) = (seqs[drop], seqs[drop + 1])
            try db.execute(
                sql: """
                    DELETE FROM snapshot_states WHERE chain = ?1 AND seq = ?2
                    AND key IN (SELECT key FROM snapshot_states WHERE chain = ?1 AND seq = ?3)
                    """,
                arguments: [chain, dropped, next])
            try db.execute(
                sql: "UPDATE snapshot_states SET seq = ?3 WHERE chain = ?1 AND seq = ?2", arguments: [chain, dropped, next])
            let delta = try digest(db, chain: chain, seq: next)
            try db.execute(
                sql: "UPDATE snapshots SET delta_rows = ?, delta_bytes = ?, digest = ? WHERE chain = ? AND seq = ?",
                arguments: [delta.rows, delta.bytes, delta.hex, chain, next])
            try db.execute(sql: "DELETE FROM snapshots WHERE chain = ? AND seq = ?", arguments: [chain, dropped])
            seqs.remove(at: drop)
        }
    }

    /// Fills `target`'s table (empty, or holding only keys the snapshot need not
    /// provide) with the states at `snapshot`, read from the snapshot tables of `schema`.
    static func restore(
        _ db: Database, _ snapshot: SnapshotRecord, into target: ReadModelTarget, schema: String, key: String? = nil
    ) throws {
        let names = ["key", "state"] + target.columns.map { ReadModel.quote($0.name) }
        let values = ["key", "state"] + target.columns.map { "json_extract(state, '$.\($0.name)')" }
        // SQLite gives the bare column `state` from the row where max(seq) is found.
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO \(target.quotedTable) (\(names.joined(separator: ", ")))
                SELECT \(values.joined(separator: ", ")) FROM (
                    SELECT key, state, max(seq) FROM \(schema).snapshot_states
                    WHERE chain = ? AND seq <= ?\(key == nil ? "" : " AND key = ?") GROUP BY key)
                """,
            arguments: key.map { [snapshot.chain, snapshot.seq, $0] } ?? [snapshot.chain, snapshot.seq])
    }

    /// Drops every chain of `projection` but `keeping` (snapshots of code that is gone).
    static func dropOtherChains(_ db: Database, projection: String, keeping: Int64?) throws {
        let others = try Int64.fetchAll(
            db, sql: "SELECT id FROM snapshot_chains WHERE projection = ? AND id IS NOT ?", arguments: [projection, keeping])
        for chain in others {
            try db.execute(sql: "DELETE FROM snapshot_states WHERE chain = ?", arguments: [chain])
            try db.execute(sql: "DELETE FROM snapshots WHERE chain = ?", arguments: [chain])
            try db.execute(sql: "DELETE FROM snapshot_chains WHERE id = ?", arguments: [chain])
        }
    }

    /// The newest snapshot of `projection`'s current code that covers only events the
    /// question selects (see `FoldedTimes.within`) and reaches no further than `maxSeq`,
    /// and whose rows check out. Snapshots that fail the check are reported to `warn`
    /// and passed over, with every later one (they build on it).
    static func newestUsable(
        _ db: Database, projection: Projection, asOf: Timestamp?, knownAt: Timestamp?, maxSeq: Int64,
        warn: (String) -> Void
    ) throws -> SnapshotRecord? {
        guard let chain = try chain(db, projection: projection, create: false) else { return nil }
        let all = try list(db, chain: chain)
        var limit = maxSeq
        for candidate in all.reversed() where candidate.seq <= limit {
            guard FoldedTimes(maxOccurredAt: candidate.maxOccurredAt, maxRecordedAt: candidate.maxRecordedAt)
                .within(asOf: asOf, knownAt: knownAt)
            else { continue }
            guard let bad = try firstDamaged(db, chain: chain, snapshots: all, upTo: candidate.seq) else { return candidate }
            warn("snapshot of \(projection.name) at seq \(bad) is damaged (its rows do not match its digest); not using it or later ones")
            limit = bad - 1
        }
        return nil
    }

    /// The seq of the first snapshot up to `upTo` whose rows do not match what was
    /// recorded of them, or nil when all match.
    static func firstDamaged(_ db: Database, chain: Int64, snapshots: [SnapshotRecord], upTo: Int64) throws -> Int64? {
        var found: [Int64: DeltaDigest] = [:]
        let statement = try db.makeStatement(sql: "SELECT seq, key, state FROM snapshot_states WHERE chain = ? AND seq <= ?")
        try statement.setArguments([chain, upTo])
        let stmt = statement.sqliteStatement
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection))) }
            let seq = sqlite3_column_int64(stmt, 0)
            found[seq, default: DeltaDigest()].add(
                key: UnsafeRawBufferPointer(start: sqlite3_column_text(stmt, 1), count: Int(sqlite3_column_bytes(stmt, 1))),
                state: UnsafeRawBufferPointer(start: sqlite3_column_text(stmt, 2), count: Int(sqlite3_column_bytes(stmt, 2))))
        }
        sqlite3_reset(stmt)
        let recorded = snapshots.filter { $0.seq <= upTo }
        for snapshot in recorded {
            let delta = found.removeValue(forKey: snapshot.seq) ?? DeltaDigest()
            if delta.rows != snapshot.deltaRows || delta.bytes != snapshot.deltaBytes || delta.hex != snapshot.digest {
                return snapshot.seq
            }
        }
        // Rows at a seq no snapshot stands for: the first snapshot after them is wrong.
        if let stray = found.keys.min() {
            return recorded.first { $0.seq > stray }?.seq ?? stray
        }
        return nil
    }

    private static func digest(_ db: Database, chain: Int64, seq: Int64) throws -> DeltaDigest {
        var delta = DeltaDigest()
        let rows = try Row.fetchCursor(
            db, sql: "SELECT key, state FROM snapshot_states WHERE chain = ? AND seq = ?", arguments: [chain, seq])
        while let row = try rows.next() {
            let key: String = row[0], state: String = row[1]
            var k = key, s = state
            k.withUTF8 { kb in s.withUTF8 { sb in delta.add(key: UnsafeRawBufferPointer(kb), state: UnsafeRawBufferPointer(sb)) } }
        }
        return delta
    }
}

/// An order-independent digest of a snapshot's rows: the sum, lane by lane, of a
/// 128-bit hash of each (key, state), taken a word at a time. It detects damage (a
/// changed, missing or extra row), not forgery: whoever can write the database can
/// rewrite the digest too.
struct DeltaDigest {
    var rows: Int64 = 0
    var bytes: Int64 = 0
    private var low: UInt64 = 0
    private var high: UInt64 = 0

    mutating func add(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer) {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(key.count)
        var b: UInt64 = 0x6c62_272e_07bb_0142 ^ UInt64(state.count)
        func feed(_ word: UInt64) {
            a = (a ^ word) &* 0x9e37_79b9_7f4a_7c15
            a ^= a >> 29
            b = (b ^ word) &* 0xbf58_476d_1ce4_e5b9
            b ^= b >> 31
        }
        func feed(_ bytes: UnsafeRawBufferPointer) {
            var offset = 0
            while offset + 8 <= bytes.count {
                feed(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            var tail: UInt64 = 0x80
            for byte in bytes[offset...] { tail = tail << 8 | UInt64(byte) }
            feed(tail)
        }
        feed(key)
        feed(state)
        low &+= a &* 0x94d0_49bb_1331_11eb
        high &+= b ^ (a >> 17)
        rows += 1
        bytes += Int64(key.count + state.count)
    }

    var hex: String { String(format: "%016llx%016llx", high, low) }
}
