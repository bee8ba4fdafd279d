import GRDB

/// A usable snapshot, with the deltas its states are merged from.
struct SnapshotView: Sendable {
    let record: SnapshotRecord
    /// The chain's snapshots up to `record.seq`, oldest first, whose deltas hold its
    /// states: a key's state at `record.seq` is the one in the last delta that holds it.
    let deltas: [SnapshotRecord]
    /// Their deltas' ids.
    var segments: [Int64] { deltas.map(\.delta) }
    /// The keys parked at its seq (a projection with `on_error = "park"`).
    var parked: [SnapshotParkedKey] = []
    var chain: Int64 { record.chain }
    /// Key -> first seq not folded, of the keys parked at its seq (`ProjectionRun.honourParked`).
    var parkedFirstSeqs: [String: Int64] { Dictionary(parked.map { ($0.key, $0.firstSeq) }, uniquingKeysWith: min) }
    var seq: Int64 { record.seq }
}

/// Reading a snapshot's states: merged over its deltas in key order, one key at a
/// time, or copied into a table.
enum SnapshotStates {
    /// The snapshot's deltas (or only their states of `key`), oldest first, each in key
    /// order: merged (`SortedStates`), they give the states at the snapshot.
    static func deltas(_ db: Database, _ view: SnapshotView, schema: String, key: String? = nil) throws -> [any StateCursor] {
        try view.segments.map { try ChunkCursor(db, schema: schema, chain: view.chain, delta: $0, key: key) }
    }

    /// One key's state at the snapshot, or nil when it has none: the newest delta
    /// holding the key is found first.
    static func state(_ db: Database, _ view: SnapshotView, schema: String, key: String) throws -> String? {
        for delta in view.segments.reversed() {
            if let state = try SnapshotChunks.state(db, schema: schema, chain: view.chain, delta: delta, key: key) { return state }
        }
        return nil
    }

    /// Fills `target`'s table (empty, or holding only keys the snapshot need not
    /// provide) with the states at the snapshot, in key order.
    static func restore(
        _ db: Database, _ view: SnapshotView, into target: ReadModelTarget, schema: String, key: String? = nil
    ) throws {
        let insert = try SQLStatement(db, target.insertIfAbsentSQL)
        try SortedStates.merge(deltas(db, view, schema: schema, key: key)) { key, state in
            insert.reset()
            insert.bind(1, text: key)
            insert.bind(2, text: state)
            try insert.run("cannot restore a snapshot of \(view.record.projection)")
        }
    }
}
