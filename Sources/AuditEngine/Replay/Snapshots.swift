import Foundation
import GRDB

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
    /// Which chunks (`snapshot_chunks.delta`) hold its delta.
    let delta: Int64
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
/// states of the keys that changed since the chain's previous snapshot (in chunks, see
/// `SnapshotChunks`), and a key's state at S is the one in the newest delta up to S
/// that holds it. Each snapshot records a digest of its delta, and every delta of the
/// chain up to S is checked against its digest before the snapshot is used.
enum Snapshots {
    /// The chain of `projection`'s current code, created when `create` (in `main`).
    static func chain(_ db: Database, schema: String = "main", projection: Projection, create: Bool) throws -> Int64? {
        let arguments: StatementArguments = [projection.name, projection.version, projection.codeHash]
        let find = "SELECT id FROM \(schema).snapshot_chains WHERE projection = ? AND version = ? AND code_hash = ?"
        if let id = try Int64.fetchOne(db, sql: find, arguments: arguments) { return id }
        guard create else { return nil }
        try db.execute(sql: "INSERT INTO snapshot_chains (projection, version, code_hash) VALUES (?, ?, ?)", arguments: arguments)
        return db.lastInsertedRowID
    }

    /// The chain's snapshots, oldest first.
    static func list(_ db: Database, schema: String = "main", chain: Int64) throws -> [SnapshotRecord] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT s.*, c.projection, c.version, c.code_hash
                FROM \(schema).snapshots s JOIN \(schema).snapshot_chains c ON c.id = s.chain
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
            milliseconds: row["milliseconds"], chain: row["chain"], delta: row["delta"], digest: row["digest"])
    }

    /// Takes a snapshot of `table` at `seq`, inside the caller's write transaction, then
    /// thins the chain to `keep`. Its delta is written as new chunks.
    ///
    /// - Parameter changed: the states changed since the chain's last snapshot, when the
    ///   caller knows them (a replay that saw every event since): runs in key order,
    ///   oldest first. Nil compares every state of the table with the last snapshot.
    /// - Parameter keys: the number of keys at `seq` when the caller knows it (only with
    ///   `changed`); nil counts the table's.
    /// - Parameter parking: for a projection with `on_error = "park"`, the dead letters
    ///   folded past up to `seq` that the table does not hold yet: the snapshot records
    ///   the table's parked set (`SnapshotParked`). Nil: the projection does not park.
    @discardableResult
    static func take(
        _ db: Database, chain: Int64, table: String, seq: Int64, times: FoldedTimes, keep: Int,
        changed: [StateRun]?, keys: Int64? = nil, parking: [(key: String, seq: Int64)]? = nil, warn: (String) -> Void
    ) throws -> SnapshotRecord? {
        let started = ContinuousClock.now
        if try Int64.fetchOne(db, sql: "SELECT 1 FROM snapshots WHERE chain = ? AND seq = ?", arguments: [chain, seq]) != nil {
            return nil  // already taken at this position
        }
        let quoted = ReadModel.quote(table)
        let deltaID = try SnapshotChunks.newDelta(db, chain: chain)
        let writer = try ChunkWriter(db, chain: chain, delta: deltaID)
        func write(_ key: UnsafeRawBufferPointer, _ state: UnsafeRawBufferPointer) throws { try writer.add(key, state) }
        if let changed {
            try StateRun.merged(changed).forEach(write)
        } else {
            // Every state of the table that differs from the last snapshot's, by a
            // merge of the two in key order.
            let all = try list(db, chain: chain)
            let last = try all.last.map {
                MergedStates(try SnapshotStates.deltas(db, SnapshotView(record: $0, deltas: all), schema: "main"))
            }
            let rows = try StatementCursor(db.makeStatement(sql: "SELECT key, state FROM \(quoted) ORDER BY key"), reading: table)
            while let key = rows.key {
                try StoredState.check(
                    key: key, state: rows.state, textual: rows.textual,
                    projection: table)
                while let k = last?.key, SortedStates.compare(k, key) < 0 { try last!.advance() }
                let unchanged = last?.key.map { SortedStates.compare($0, key) == 0 && SortedStates.compare(last!.state, rows.state) == 0 }
                if unchanged != true { try write(key, rows.state) }
                try rows.advance()
            }
        }
        let delta = try writer.finish()
        let keys = try keys ?? Int64.fetchOne(db, sql: "SELECT count(*) FROM \(quoted)") ?? 0
        if let parking { try SnapshotParked.record(db, chain: chain, seq: seq, table: table, pending: parking) }
        let milliseconds = Int64((ContinuousClock.now - started).seconds * 1000)
        try db.execute(
            sql: """
                INSERT INTO snapshots (chain, seq, max_occurred_at, max_recorded_at, keys, delta_rows, delta_bytes, digest,
                                       created_at, milliseconds, delta)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                chain, seq, times.maxOccurredAt, times.maxRecordedAt, keys, delta.rows, delta.bytes, delta.hex,
                Timestamp.now().description, milliseconds, deltaID,
            ])
        try thin(db, chain: chain, keep: keep, warn: warn)
        return try list(db, chain: chain).first { $0.seq == seq }
    }

    /// Which of the snapshots at `planned` seqs (ascending, after every taken one) are
    /// still kept once all are taken and thinned to `keep`: a long catch-up takes only
    /// those, instead of writing snapshots that thinning deletes before it ends.
    static func survivors(taken: [Int64], planned: [Int64], keep: Int) -> Set<Int64> {
        var seqs = taken
        for seq in planned {
            seqs.append(seq)
            while seqs.count > max(keep, 1) { seqs.remove(at: dropIndex(seqs)) }
        }
        return Set(seqs).intersection(planned)
    }

    /// The snapshot thinning drops next: never the last, and the first only when two
    /// are left; otherwise the one whose loss leaves the smallest gap in seq, so that
    /// the kept ones stay spread over the log.
    private static func dropIndex(_ seqs: [Int64]) -> Int {
        guard seqs.count > 2 else { return 0 }
        var drop = 1
        for i in 1..<(seqs.count - 1) where seqs[i + 1] - seqs[i - 1] < seqs[drop + 1] - seqs[drop - 1] {
            drop = i
        }
        return drop
    }

    /// Drops snapshots beyond `keep` (see `dropIndex`). The dropped one's states that
    /// the next snapshot does not replace move into it: the two deltas are merged into
    /// new chunks. A dropped snapshot whose delta does not match its digest is not
    /// merged on: it and every later snapshot of the chain are deleted instead (the next
    /// replay takes them again).
    static func thin(_ db: Database, chain: Int64, keep: Int, warn: (String) -> Void) throws {
        var all = try list(db, chain: chain)
        while all.count > max(keep, 1) {
            let drop = dropIndex(all.map(\.seq))
            let (dropped, next) = (all[drop], all[drop + 1])
            let merged = try SnapshotChunks.newDelta(db, chain: chain)
            var droppedDigest = DeltaDigest()
            // The next one's digest grows by the states moved into it (the digest is a sum).
            var mergedDigest = DeltaDigest(next)
            do {
                let writer = try ChunkWriter(db, chain: chain, delta: merged)
                let older = try ChunkCursor(db, schema: "main", chain: chain, delta: dropped.delta)
                let newer = try ChunkCursor(db, schema: "main", chain: chain, delta: next.delta)
                while older.key != nil || newer.key != nil {
                    let order = older.key.map { old in newer.key.map { SortedStates.compare(old, $0) } ?? -1 } ?? 1
                    if order <= 0 { droppedDigest.add(key: older.key!, state: older.state) }
                    if order < 0 {
                        mergedDigest.add(key: older.key!, state: older.state)
                        try writer.add(older.key!, older.state)
                        try older.advance()
                    } else {
                        try writer.add(newer.key!, newer.state)
                        try newer.advance()
                        if order == 0 { try older.advance() }
                    }
                }
                _ = try writer.finish()
            } catch is DamagedChunk {
                droppedDigest = DeltaDigest()  // cannot match: handled below
            }
            guard droppedDigest.matches(dropped) else {
                warn("snapshot of \(dropped.projection) at seq \(dropped.seq) is damaged (its states do not match its digest); deleting it and the later ones")
                try SnapshotChunks.deleteDelta(db, chain: chain, delta: merged)
                try delete(db, chain: chain, fromSeq: dropped.seq)
                return
            }
            try SnapshotChunks.deleteDelta(db, chain: chain, delta: dropped.delta)
            try SnapshotChunks.deleteDelta(db, chain: chain, delta: next.delta)
            try db.execute(
                sql: "UPDATE snapshots SET delta = ?, delta_rows = ?, delta_bytes = ?, digest = ? WHERE chain = ? AND seq = ?",
                arguments: [merged, mergedDigest.rows, mergedDigest.bytes, mergedDigest.hex, chain, next.seq])
            try db.execute(sql: "DELETE FROM snapshots WHERE chain = ? AND seq = ?", arguments: [chain, dropped.seq])
            try SnapshotParked.forget(db, chain: chain, seq: dropped.seq)
            all = try list(db, chain: chain)
        }
    }

    /// Deletes the snapshots of `chain` from `fromSeq` on, with their deltas and parked sets.
    static func delete(_ db: Database, chain: Int64, fromSeq: Int64) throws {
        try SnapshotChunks.deleteDeltas(db, chain: chain, fromSeq: fromSeq)
        try db.execute(sql: "DELETE FROM snapshots WHERE chain = ? AND seq >= ?", arguments: [chain, fromSeq])
        try SnapshotParked.forget(db, chain: chain, fromSeq: fromSeq)
    }

    /// Drops every chain of `projection` but `keeping` (snapshots of code that is gone).
    static func dropOtherChains(_ db: Database, projection: String, keeping: Int64?) throws {
        let others = try Int64.fetchAll(
            db, sql: "SELECT id FROM snapshot_chains WHERE projection = ? AND id IS NOT ?", arguments: [projection, keeping])
        for chain in others {
            try db.execute(sql: "DELETE FROM snapshot_chunks WHERE chain = ?", arguments: [chain])
            try db.execute(sql: "DELETE FROM snapshots WHERE chain = ?", arguments: [chain])
            try SnapshotParked.forget(db, chain: chain)
            try db.execute(sql: "DELETE FROM snapshot_chains WHERE id = ?", arguments: [chain])
        }
    }

    /// The newest snapshot of `projection`'s current code that covers only events the
    /// question selects (see `FoldedTimes.within`) and reaches no further than `maxSeq`,
    /// and whose deltas check out. Snapshots that fail the check are reported to `warn`
    /// and passed over, with every later one (they build on it).
    ///
    /// The view is only valid in the read transaction that found it: a replay may thin
    /// the chain (merging and deleting deltas) once that transaction ends. Read its
    /// states in the same transaction (`TemporaryStates` holds one for a whole question).
    ///
    /// For a projection with `on_error = "park"`, the view carries the keys parked at its
    /// seq, and only a snapshot that recorded them is usable; one with a key parked by the
    /// instruction budget only for a fold under that same budget (`limits`, else the
    /// projection's own), since another budget may not park it.
    ///
    /// With `checksDigests` false the deltas are not checked here: the caller reads every
    /// one of them anyway and checks each as it reads it (`BaseStates`), and asks again
    /// with the check when one fails.
    static func newestUsable(
        _ db: Database, schema: String = "main", projection: Projection, asOf: Timestamp?, knownAt: Timestamp?,
        maxSeq: Int64, limits: LuaLimitOverrides? = nil, checksDigests: Bool = true, warn: (String) -> Void
    ) throws -> SnapshotView? {
        guard let chain = try chain(db, schema: schema, projection: projection, create: false) else { return nil }
        let all = try list(db, schema: schema, chain: chain)
        let budget = (limits?.applied(to: projection.limits) ?? projection.limits).instructionsPerEvent
        var limit = maxSeq
        for candidate in all.reversed() where candidate.seq <= limit {
            guard FoldedTimes(maxOccurredAt: candidate.maxOccurredAt, maxRecordedAt: candidate.maxRecordedAt)
                .within(asOf: asOf, knownAt: knownAt)
            else { continue }
            var parked: [SnapshotParkedKey] = []
            if projection.onError == .park {
                guard let keys = try SnapshotParked.keys(db, schema: schema, candidate),
                      keys.allSatisfy({ ParkedKeys.instructionBudget(inError: $0.error).map { $0 == budget } ?? true })
                else { continue }
                parked = keys
            }
            let deltas = all.filter { $0.seq <= candidate.seq }
            guard checksDigests, let bad = try firstDamaged(db, schema: schema, chain: chain, snapshots: all, upTo: candidate.seq) else {
                return SnapshotView(record: candidate, deltas: deltas, parked: parked)
            }
            warn("snapshot of \(projection.name) at seq \(bad) is damaged (its states do not match its digest); not using it or later ones")
            limit = bad - 1
        }
        return nil
    }

    /// The seq of the first snapshot up to `upTo` whose delta does not match its
    /// digest (or does not parse), or nil when all match.
    static func firstDamaged(
        _ db: Database, schema: String = "main", chain: Int64, snapshots: [SnapshotRecord], upTo: Int64
    ) throws -> Int64? {
        for snapshot in snapshots where snapshot.seq <= upTo {
            var digest = DeltaDigest()
            do {
                try digest.add(ChunkCursor(db, schema: schema, chain: chain, delta: snapshot.delta))
            } catch is DamagedChunk {
                return snapshot.seq
            }
            if !digest.matches(snapshot) { return snapshot.seq }
        }
        return nil
    }
}

/// An order-independent digest of a snapshot's delta: the sum, lane by lane, of a
/// 128-bit hash of each (key, state), taken a word at a time. It detects damage (a
/// changed, missing or extra state), not forgery: whoever can write the database can
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

    /// Adds every state `states` gives, to its end.
    mutating func add(_ states: some StateCursor) throws {
        while let key = states.key {
            add(key: key, state: states.state)
            try states.advance()
        }
    }

    var hex: String { String(format: "%016llx%016llx", high, low) }

    init() {}

    /// The digest a snapshot recorded of its delta.
    init(_ snapshot: SnapshotRecord) {
        rows = snapshot.deltaRows
        bytes = snapshot.deltaBytes
        let hex = Array(snapshot.digest.utf8)
        if hex.count == 32 {
            high = UInt64(String(decoding: hex[0..<16], as: UTF8.self), radix: 16) ?? 0
            low = UInt64(String(decoding: hex[16..<32], as: UTF8.self), radix: 16) ?? 0
        }
    }

    /// Whether these states are the ones `snapshot` recorded.
    func matches(_ snapshot: SnapshotRecord) -> Bool {
        rows == snapshot.deltaRows && bytes == snapshot.deltaBytes && hex == snapshot.digest
    }
}
