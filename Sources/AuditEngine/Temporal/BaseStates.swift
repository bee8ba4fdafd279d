import GRDB

/// The base a question's fold starts from: the chosen snapshot, or its states loaded
/// into memory.
///
/// A fold from a snapshot looks up the state of every key it meets in the snapshot
/// first; from its chunks that is a lookup per delta (about 10 µs a key on 2,000,000
/// events, measured: most of an early question's fold). A question that reads every
/// state (a query, `audit state` without a key) reads the whole snapshot anyway, so its
/// states are merged into memory once, in key order: the fold then finds a key by a
/// hash, and the overlay scans memory. The deltas' digests were checked when the
/// snapshot was chosen (`Snapshots.newestUsable`); a chunk that does not parse fails
/// the merge.
enum BaseStates {
    /// A snapshot whose deltas hold more bytes than this is read from its chunks.
    static let budget = 512 << 20

    /// The base of a fold from `view` (found in `db`'s transaction): its states in
    /// memory when `load` and they fit `budget`, else the snapshot's chunks.
    static func base(_ view: SnapshotView?, _ db: Database, load: Bool) throws -> StateOverlay.Base {
        guard let view else { return .none }
        let chunks = StateOverlay.Base.snapshot(view, schema: "store")
        guard load else { return chunks }
        // Each delta's chunks, read in key order, are one run of records: the runs are
        // merged in C (`StateRun(merging:)`), newest delta winning. (Merged a record at a
        // time through cursors instead, they took a quarter of a question: measured.)
        var runs: [StateRun] = []
        var bytes = 0
        for delta in view.segments {
            let statement = try SQLStatement(
                db, "SELECT records, count FROM store.snapshot_chunks WHERE chain = ? AND delta = ? ORDER BY first_key")
            statement.bind(1, view.chain)
            statement.bind(2, delta)
            var records: [UInt8] = []
            var count = 0
            while try statement.step("cannot read the snapshot chunks of chain \(view.chain), delta \(delta)") {
                records.append(contentsOf: statement.blob(0))
                count += Int(statement.int64(1))
            }
            bytes += records.count
            if bytes > budget { return chunks }
            runs.append(StateRun(sorted: records, count: count))
        }
        return .states(try StateRun(mergingStored: runs))
    }
}
