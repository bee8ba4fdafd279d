/// The serialised states a projection wrote to its table since its VMs first let go of
/// their states, kept in memory up to a budget: a state read back is looked up here
/// before the table.
///
/// A state in a VM takes about five times the memory of its JSON here (a Lua table,
/// and the VM's map of keys), so the cache holds several times the keys the VMs can.
/// A replay whose keys outgrow its VMs' memory reads most states back from here: on
/// 4,000,000 events over a million keys with the default limit, reading a state back
/// from the table cost about 9 µs, most of it SQLite's lookup and its copy of the page
/// (measured).
///
/// Every write of the table adds its states, newest last, so the newest state a key has
/// here is the newest it has anywhere, including the checkpoint in flight, which the
/// table does not show yet: a VM may drop its states without waiting for that
/// checkpoint to commit. Past the budget the oldest runs are dropped (never the newest,
/// which may be in flight); a key whose state they held is read from the table, where
/// it has been committed since.
///
/// `@unchecked Sendable`: changed only on the replay's thread between batches, and only
/// read while partitions fold a batch concurrently (`StateRun` lookups are thread-safe).
final class StateCache: @unchecked Sendable {
    /// Oldest first.
    private var runs: [StateRun] = []
    /// The most bytes its runs hold (their records and key indexes), unless the newest
    /// alone holds more.
    let budget: Int
    private(set) var byteCount = 0

    init(budget: Int) {
        self.budget = budget
    }

    var runCount: Int { runs.count }

    /// Adds a table write's states (runs oldest first, all newer than what it holds).
    ///
    /// A write's runs are merged into one, and then the newest two while the older is at
    /// most twice the newer (each key once, with its newest state): sizes at least
    /// double from newest to oldest, so a key not here probes few runs (with a run per
    /// snapshot and checkpoint, unmerged, those probes were a tenth of a replay that
    /// evicts, measured), and each state is copied a few times at most however many
    /// checkpoints there are.
    func add(_ new: [StateRun]) {
        let added = new.filter { $0.count > 0 }
        guard !added.isEmpty else { return }
        runs.append(StateRun.merged(added))
        byteCount = runs.reduce(0) { $0 + Self.bytes(of: $1) }
        // Past the budget the oldest go, never the states just written (maybe in flight).
        while byteCount > budget, runs.count > 1 {
            byteCount -= Self.bytes(of: runs.removeFirst())
        }
        while runs.count >= 2, runs[runs.count - 2].byteCount <= 2 * runs[runs.count - 1].byteCount {
            let merged = StateRun.merged(Array(runs.suffix(2)))
            runs.removeLast(2)
            runs.append(merged)
        }
        byteCount = runs.reduce(0) { $0 + Self.bytes(of: $1) }
    }

    /// The newest state it holds for `key`.
    func state(forKey key: String) -> String? {
        var key = key
        return key.withUTF8 { bytes in
            let key = UnsafeRawBufferPointer(bytes)
            let hash = KeyIndex.hash(key)
            for run in runs.reversed() {
                if let state = run.state(forKey: key, hash: hash) { return String(decoding: state, as: UTF8.self) }
            }
            return nil
        }
    }

    /// A run's records and its key index (two to four words a record).
    private static func bytes(of run: StateRun) -> Int { run.byteCount + 24 * run.count }
}
