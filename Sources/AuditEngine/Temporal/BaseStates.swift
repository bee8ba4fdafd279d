import GRDB

/// The base a question's fold starts from: the chosen snapshot, or its states loaded
/// into memory.
///
/// A fold from a snapshot looks up the state of every key it meets in the snapshot
/// first; from its chunks that is a lookup per delta (about 10 µs a key on 2,000,000
/// events, measured: most of an early question's fold). A question that reads every
/// state (a query, `audit state` without a key) reads the whole snapshot anyway, so its
/// states are merged into memory once, in key order: the fold then finds a key by a
/// hash, and the overlay scans memory.
enum BaseStates {
    /// A snapshot with more bytes of states than this is read from its chunks.
    static let budget = 512 << 20

    /// The base of a fold from `view` (found in `db`'s transaction): its states in
    /// memory when `load` and they fit `budget`, else the snapshot's chunks.
    static func base(_ view: SnapshotView?, _ db: Database, load: Bool) throws -> StateOverlay.Base {
        guard let view else { return .none }
        let chunks = StateOverlay.Base.snapshot(view, schema: "store")
        guard load else { return chunks }
        var records: [UInt8] = []
        records.reserveCapacity(Int(min(view.record.keys, 1 << 22)) * 96)
        var count = 0
        let merged = MergedStates(try SnapshotStates.deltas(db, view, schema: "store"))
        while let key = merged.key {
            StateRecords.append(key, merged.state, to: &records)
            count += 1
            if records.count > budget { return chunks }
            try merged.advance()
        }
        return .states(StateRun(sorted: records, count: count))
    }
}
