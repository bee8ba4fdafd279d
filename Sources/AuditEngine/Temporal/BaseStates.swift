import Dispatch
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
    /// A snapshot whose deltas hold more bytes than this is read from its chunks.
    static let budget = 512 << 20

    /// The base of a fold from `view` (found in `db`'s transaction): its states in
    /// memory when `load` and they fit `budget`, else the snapshot's chunks; nil when
    /// `load` and a delta does not match its digest (or does not parse), which then
    /// needs the checked choice of `Snapshots.newestUsable` (it warns, and passes over
    /// that snapshot and every later one).
    static func base(_ view: SnapshotView?, _ db: Database, load: Bool) throws -> StateOverlay.Base? {
        guard let view else { return StateOverlay.Base.none }
        let chunks = StateOverlay.Base.snapshot(view, schema: "store")
        guard load else { return chunks }
        // A delta's record bytes: its states' (`deltaBytes`) and two lengths each.
        let sizes = view.deltas.map { Int($0.deltaBytes + 8 * $0.deltaRows) }
        guard sizes.reduce(0, +) <= budget else { return chunks }
        // Each delta's chunks, read in key order into a buffer of its size, are one run of
        // records, checked against the delta's digest here (read once more to be checked
        // first, they cost a fifth of a late question: measured); the runs are merged in C
        // (`StateRun(mergingStored:)`), the newest delta winning.
        var runs: [StateRun] = []
        for (delta, size) in zip(view.deltas, sizes) {
            guard let run = try read(delta, size: size, db) else { return nil }
            runs.append(run)
        }
        let matches = UnsafeMutableBufferPointer<Bool>.allocate(capacity: runs.count)
        matches.initialize(repeating: false)
        defer { matches.deallocate() }
        let checks = DigestChecks(runs: runs, deltas: view.deltas, matches: matches)
        DispatchQueue.concurrentPerform(iterations: runs.count) { checks.check($0) }
        guard matches.allSatisfy({ $0 }) else { return nil }
        do {
            return .states(try StateRun(mergingStored: runs))
        } catch is DamagedChunk {
            return nil
        }
    }

    /// The records of `delta`'s chunks, `size` bytes, in key order; nil when they are
    /// not that size (a damaged delta).
    private static func read(_ delta: SnapshotRecord, size: Int, _ db: Database) throws -> StateRun? {
        let records = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 8)
        var filled = 0
        var count = 0
        do {
            let statement = try SQLStatement(
                db, "SELECT records, count FROM store.snapshot_chunks WHERE chain = ? AND delta = ? ORDER BY first_key",
                cached: true)
            defer { statement.reset() }
            statement.bind(1, delta.chain)
            statement.bind(2, delta.delta)
            while try statement.step("cannot read the snapshot chunks of chain \(delta.chain), delta \(delta.delta)") {
                let blob = statement.blob(0)
                guard blob.count <= size - filled else {
                    records.deallocate()
                    return nil
                }
                if !blob.isEmpty { (records.baseAddress! + filled).copyMemory(from: blob.baseAddress!, byteCount: blob.count) }
                filled += blob.count
                count += Int(statement.int64(1))
            }
        } catch {
            records.deallocate()
            throw error
        }
        guard filled == size, Int64(count) == delta.deltaRows else {
            records.deallocate()
            return nil
        }
        return StateRun(adopting: records, count: count, byteCount: filled)
    }
}

/// The digests of a base's runs, checked concurrently: each task reads one run (which
/// nothing changes any more) and writes its own slot of `matches`.
private final class DigestChecks: @unchecked Sendable {
    let runs: [StateRun]
    let deltas: [SnapshotRecord]
    let matches: UnsafeMutableBufferPointer<Bool>

    init(runs: [StateRun], deltas: [SnapshotRecord], matches: UnsafeMutableBufferPointer<Bool>) {
        self.runs = runs
        self.deltas = deltas
        self.matches = matches
    }

    func check(_ index: Int) {
        // A run whose records stop parsing ends early: too few states for its digest.
        var digest = DeltaDigest()
        try? digest.add(RunCursor(runs[index]))
        matches[index] = digest.matches(deltas[index])
    }
}
