import Testing

@testable import AuditEngine

/// The states a replay that evicts reads back from memory before the table
/// (`StateCache`): it must never give a state older than the newest written, whatever
/// it merged or dropped, and it must find what the write in flight holds.
@Suite("State cache")
struct StateCacheTests {
    /// A run of serialised states, as a VM's flush gives them (in no particular order).
    private static func run(_ pairs: [(key: String, state: String)]) -> StateRun {
        var bytes: [UInt8] = []
        for (key, state) in pairs {
            Array(key.utf8).withUnsafeBytes { k in Array(state.utf8).withUnsafeBytes { StateRecords.append(k, $0, to: &bytes) } }
        }
        return bytes.withUnsafeBytes { StateRun(LuaVM.FlushedStates(records: $0, count: pairs.count)) }
    }

    /// `run`'s state for `key`, looked up as `StateCache` does.
    private static func state(in run: StateRun, forKey key: String) -> String? {
        var key = key
        return key.withUTF8 { bytes in
            let key = UnsafeRawBufferPointer(bytes)
            return run.state(forKey: key, hash: KeyIndex.hash(key)).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test("a run finds each key it holds, with its state, and no other")
    func runLookup() {
        var rng = SplitMix64(seed: 11)
        var keys = Set(["", "a", "order-", "order-1", "order-10", String(repeating: "customer-account-", count: 4)])
        while keys.count < 5_000 { keys.insert("order-\(rng.next() % 1_000_000)") }
        let pairs = keys.shuffled(using: &rng).map { (key: $0, state: #"{"k":"\#($0)"}"#) }
        let run = Self.run(pairs)
        for (key, state) in pairs {
            #expect(Self.state(in: run, forKey: key) == state)
        }
        for absent in ["order-", "order-1x", "b", "order-1000000", "order-01"] where !keys.contains(absent) {
            #expect(Self.state(in: run, forKey: absent) == nil)
        }
    }

    /// Writes of 1 to 3 runs over a pool of keys, each state naming its write: after
    /// every write, each key's state from the cache is its newest, or (only once the
    /// budget dropped runs) none; the last write's keys are always there.
    @Test("the newest state of every key, across merges and budget drops, and few runs", arguments: [Int.max, 6_000])
    func newestWins(budget: Int) {
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: budget))
        let cache = StateCache(budget: budget)
        var newest: [String: String] = [:]
        for write in 0..<60 {
            var runs: [StateRun] = []
            var written: Set<String> = []
            for part in 0..<Int(1 + rng.next() % 3) {
                // Within a run each key once; a later run of the same write may change it again.
                let keys = Set((0..<Int(1 + rng.next() % 40)).map { _ in "k\(rng.next() % 300)" })
                let pairs = keys.map { (key: $0, state: #"{"write":\#(write),"part":\#(part)}"#) }
                for (key, state) in pairs { newest[key] = state }
                written.formUnion(keys)
                runs.append(Self.run(pairs))
            }
            cache.add(runs)
            for (key, state) in newest {
                let found = cache.state(forKey: key)
                if budget == Int.max || written.contains(key) {
                    #expect(found == state, "key \(key) after write \(write)")
                } else {
                    #expect(found == nil || found == state, "key \(key) after write \(write): a stale state")
                }
            }
            #expect(cache.state(forKey: "absent") == nil)
            #expect(cache.runCount <= 8, "runs are merged as they come")
            if budget != Int.max { #expect(cache.byteCount <= budget || cache.runCount == 1) }
        }
    }
}
