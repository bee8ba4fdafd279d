import Foundation

/// The states a question's fold changed since its base, in memory, in key order: what
/// its checkpoints write instead of a table (`ProjectionRun.changes`), and what its
/// overlay reads over the base (`StateOverlay.Changes.states`).
///
/// Written into a table of the question's temporary database instead, the states a
/// series changes at each point cost more than folding them (an upsert per state into
/// a B-tree of up to every key: a third of each point, measured), and read back through
/// SQL in key order more than a scan of memory.
///
/// `@unchecked Sendable`: `add` runs on the checkpoint writer's thread, lookups on the
/// fold's, both under `lock`; a run, once made, is never changed.
final class ChangedStates: @unchecked Sendable {
    private let lock = NSLock()
    private var merged: StateRun?

    /// Every state changed so far, each key once, in key order (nil: none yet).
    var run: StateRun? {
        lock.lock()
        defer { lock.unlock() }
        return merged
    }

    /// Adds a checkpoint's states (oldest runs first, all newer than what it holds).
    func add(_ runs: [StateRun]) {
        let added = runs.filter { $0.count > 0 }
        guard !added.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        merged = StateRun.merged((merged.map { [$0] } ?? []) + added)
    }

    /// Forgets what it holds of `keys`, and holds `states` (key, state; in key order, of
    /// some of `keys`) for them instead: a key parked in place gets its last good state
    /// (`EventStore.refoldParkedInPlace`), or none when that is the base's.
    func replace(_ keys: Set<String>, with states: [(key: String, state: String)]) {
        lock.lock()
        defer { lock.unlock() }
        var kept: [UInt8] = []
        var count = 0
        merged?.forEach { key, state in
            guard !keys.contains(String(decoding: key, as: UTF8.self)) else { return }
            StateRecords.append(key, state, to: &kept)
            count += 1
        }
        var added: [UInt8] = []
        for (key, state) in states {
            var key = key, state = state
            key.withUTF8 { key in state.withUTF8 { StateRecords.append(UnsafeRawBufferPointer(key), UnsafeRawBufferPointer($0), to: &added) } }
        }
        merged = StateRun.merged([StateRun(sorted: kept, count: count), StateRun(sorted: added, count: states.count)])
    }

    /// The state changed for `key`, or nil when the fold changed none.
    func state(of key: String) -> String? {
        run?.state(of: key)
    }
}
