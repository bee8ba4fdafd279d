/// When a replaying projection takes its snapshots.
///
/// Every `policy.every` seqs after the chain's last snapshot; but on a long catch-up
/// (a rebuild from seq 1, say) only at the points that retention would still keep
/// when the catch-up ends: the others would be written and thinned away within the
/// same replay.
struct SnapshotSchedule {
    let chain: Int64
    let policy: SnapshotPolicy
    /// The seq of the chain's last snapshot.
    private(set) var last: Int64
    /// The states changed since `last`, gathered at checkpoints (runs in key order,
    /// oldest first), when the replay has seen every change since; nil when not (it
    /// resumed after `last`): the snapshot then compares the table with the last one.
    var changed: [StateRun]?
    /// Keys in the table when the replay started; counted only when a snapshot is
    /// expected (nil: a snapshot is taken with a checkpoint, which counts the table).
    let keysAtStart: Int64?
    /// Take one at the replay's end whatever the policy (`audit snapshot`: at the
    /// position the replay brings the projection to, not at its first checkpoint).
    private var force = false
    /// Where the replay is expected to end.
    private let end: Int64
    /// The catch-up's planned snapshots, ascending: each is taken at the first
    /// checkpoint at or after it. Once they are taken, `policy.every` applies again.
    private var plan: [Int64]

    /// - Parameters:
    ///   - taken: the seqs of the chain's snapshots, none past `position`.
    ///   - position: where the replay starts; `head`: where it is expected to end.
    init(chain: Int64, policy: SnapshotPolicy, taken: [Int64], position: Int64, head: Int64, keys: Int64?, force: Bool) {
        self.chain = chain
        keysAtStart = keys
        self.policy = policy
        last = taken.last ?? 0
        self.force = force
        end = head
        changed = last == position && policy.every > 0 ? [] : nil
        plan = []
        // Planned only when there are a few points to spare, and not too many to simulate.
        if policy.every > 0, head - last >= 2 * policy.every, (head - last) / policy.every <= 10_000 {
            let points = Array(stride(from: last + policy.every, through: head, by: Int(policy.every)))
            let kept = Snapshots.survivors(taken: taken, planned: points, keep: policy.keep)
            plan = points.filter(kept.contains)
        }
    }

    func isDue(at position: Int64) -> Bool {
        guard position > last else { return false }
        if force, position >= end { return true }
        guard policy.every > 0 else { return false }
        if let next = plan.first { return position >= next }
        return position - last >= policy.every
    }

    mutating func taken(at position: Int64) {
        last = position
        force = false
        changed = policy.every > 0 ? [] : nil
        plan.removeAll { $0 <= position }
    }
}
