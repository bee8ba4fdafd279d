import Dispatch
import GRDB

/// What one projection's checkpoint writes, decided on the replay's thread
/// (`ProjectionRun.planCheckpoint`) and written on the writer's: plain values and
/// serialised states that nothing changes any more.
struct CheckpointWrite {
    let projection: String
    let target: ReadModelTarget
    let position: Int64
    let times: FoldedTimes
    /// The states to upsert into the table, oldest runs first, and the position; nil:
    /// the table is left for a later checkpoint (only a snapshot is written).
    var states: [StateRun]?
    /// The projection's states not in the table yet: upserted before `states` when the
    /// table is written; otherwise `backlogged` joins them.
    var backlog: TableBacklog?
    var backlogged: [StateRun] = []
    var snapshot: Snapshot?
    /// Dead letters of parked keys folded past up to `position`, written with the table.
    var deadLetters: [(key: String, seq: Int64)] = []
    /// The parked key a retry folded (its parked row and dead letters are replaced).
    var retry: ProjectionRun.Retry?
    /// A question's fold: the states are kept here instead of written to the table.
    var changes: ChangedStates?

    struct Snapshot {
        let chain: Int64
        let keep: Int
        /// The states changed since the chain's last snapshot, when known (see `SnapshotSchedule.changed`).
        let changed: [StateRun]?
        /// The table's keys at `position` when the table is not written with it.
        let keys: Int64?
        /// For a parking projection: the dead letters up to `position` that the table
        /// does not hold (it is not written with the snapshot); nil: it does not park.
        var parking: [(key: String, seq: Int64)]?
    }

    func write(_ db: Database, warn: (String) -> Void) throws {
        if let states, let changes {
            changes.add((backlog?.take() ?? []) + states)
        } else if let states {
            let upsert = try StateUpsert(db, target: target)
            try upsert.write(StateRun.merged((backlog?.take() ?? []) + states))
            try ReadModel.savePosition(db, target: target, position: position, times: times)
            if let retry {
                try ParkedKeys.clear(db, table: target.table, keys: [retry.key])
                if let again = retry.parkedAgain { try ParkedKeys.park(db, table: target.table, [again]) }
                if retry.parkedAgain?.seq != retry.firstSeq, let chain = retry.snapshotChain {
                    try Snapshots.delete(db, chain: chain, fromSeq: retry.firstSeq)
                }
            }
            if target.catalog != nil { try ParkedKeys.record(db, table: target.table, deadLetters) }
        } else if let backlog, !backlogged.isEmpty {
            backlog.add(backlogged)
        }
        if let snapshot {
            try Snapshots.take(
                db, chain: snapshot.chain, table: target.table, seq: position, times: times, keep: snapshot.keep,
                changed: snapshot.changed, keys: snapshot.keys, parking: snapshot.parking, warn: warn)
        }
    }
}

/// A projection's states in its snapshots but not yet in its table (snapshots taken
/// between checkpoints leave the table for the next checkpoint, which writes each key
/// once): runs in key order, oldest first, that the checkpoint writing the table merges.
///
/// Runs pile up one per snapshot; past `mergeAt` of them they are merged into one by
/// the checkpoint writer, while the replay folds on, so that the checkpoint that writes
/// the table has few runs to merge, which the replay's thread waits for at its last
/// checkpoint (measured: a quarter of that wait, merging twelve runs of 1.7 million
/// states one by one). Not at every snapshot: once most keys have changed, each merge
/// copies nearly all of them again, and merging at every snapshot was a quarter of the
/// writer's CPU, which a parallel replay on two cores pays in full.
///
/// `@unchecked Sendable`: changed by a checkpoint's write, and used by the replay's
/// thread (which takes it when it merges a write's states for its cache) only after it
/// waited for that checkpoint (one is in flight at a time).
final class TableBacklog: @unchecked Sendable {
    private var runs: [StateRun] = []
    /// The most runs it holds unmerged.
    let mergeAt: Int

    init(mergeAt: Int = 4) {
        self.mergeAt = max(1, mergeAt)
    }

    var byteCount: Int { runs.reduce(0) { $0 + $1.byteCount } }
    /// Its runs, oldest first (read only while no checkpoint is in flight).
    var pending: [StateRun] { runs }
    var isEmpty: Bool { runs.isEmpty }
    var runCount: Int { runs.count }

    /// Adds `runs` (oldest first, all newer than what it holds) to the backlog.
    func add(_ new: [StateRun]) {
        runs += new
        if runs.count > mergeAt { runs = [StateRun.merged(runs)] }
    }

    /// Its states, as runs oldest first; it is empty after.
    func take() -> [StateRun] {
        defer { runs = [] }
        return runs
    }
}

/// Commits a replay's checkpoints on a thread of its own while the replay folds on.
///
/// Before, the replay's thread (or, with `--parallel`, every worker) waited for each
/// checkpoint's transaction: merging the runs of states, the upserts, the snapshot
/// chunks and the commit were a fifth of a replay's time (measured). Now the next
/// batches fold meanwhile.
///
/// At most one checkpoint is in flight, so they commit in order and hold bounded
/// memory. `wait` returns once it has committed (or throws its error); the replay's
/// thread waits before it changes what a checkpoint's write reads (a projection's
/// backlog). A VM may let go of its states while the checkpoint that writes them is in
/// flight: the fold then reads them back from that checkpoint's serialised states, not
/// the table (`StateCache`).
///
/// A state database whose reads share the writer's connection (a temporal question's)
/// is written at once, on the caller's thread.
final class CheckpointWriter<States: StateDatabase> {
    private let states: States
    private let warn: @Sendable (String) -> Void
    private let queue = DispatchQueue(label: "audit.checkpoint-writer")
    private var inFlight: Job?
    /// Tests: each checkpoint commits only once the replay waits for it, so everything
    /// the replay does between two checkpoints sees the first in flight.
    private let holdUntilWaited: Bool
    /// How long `wait` has waited for checkpoints in flight, in all.
    private(set) var waited = Duration.zero

    /// - Parameters:
    ///   - warn: reports what a snapshot found wrong and worked around.
    ///   - holdUntilWaited: tests: a checkpoint commits only when `wait` (or `abandon`) is called.
    init(states: States, holdUntilWaited: Bool = false, warn: @escaping @Sendable (String) -> Void) {
        self.states = states
        self.holdUntilWaited = holdUntilWaited
        self.warn = warn
    }

    /// Writes `writes` in one transaction, after the checkpoint in flight: on the
    /// writer's thread, while the caller goes on (see `wait`).
    func submit(_ writes: [CheckpointWrite]) throws {
        try wait()
        guard states.concurrentReads else {
            try Self.commit(writes, to: states, warn: warn)
            return
        }
        let job = Job(states: states, writes: writes, held: holdUntilWaited, warn: warn)
        queue.async { job.run() }
        inFlight = job
    }

    /// Waits for the checkpoint in flight, if any, to commit.
    /// - Throws: the error that failed its transaction (nothing of it was written).
    func wait() throws {
        guard let job = inFlight else { return }
        inFlight = nil
        let start = ContinuousClock.now
        job.release?.signal()
        job.done.wait()
        waited += ContinuousClock.now - start
        if let error = job.error { throw error }
    }

    /// One checkpoint's writes, in one transaction.
    private static func commit(_ writes: [CheckpointWrite], to states: States, warn: (String) -> Void) throws {
        try states.writeStates { db in
            for write in writes { try write.write(db, warn: warn) }
        }
    }

    /// Runs `body` in a write transaction of its own, after the checkpoint in flight.
    func writeNow(_ body: (Database) throws -> Void) throws {
        try wait()
        try states.writeStates(body)
    }

    /// For a replay that stops on an error: the checkpoint in flight still finishes
    /// (committed, it is a consistent checkpoint; failed, it wrote nothing) before the
    /// replay returns and lets go of its lock.
    func abandon() {
        guard let job = inFlight else { return }
        inFlight = nil
        job.release?.signal()
        job.done.wait()
    }

    /// One checkpoint's transaction, on the writer's queue.
    ///
    /// `@unchecked Sendable`: `writes` are only read, by the writer's thread; `error`
    /// is written before `done` is signalled and read only after waiting on it.
    private final class Job: @unchecked Sendable {
        let states: States
        let writes: [CheckpointWrite]
        let warn: @Sendable (String) -> Void
        let done = DispatchSemaphore(value: 0)
        /// Held (tests): signalled when the replay waits for the job, which commits only then.
        let release: DispatchSemaphore?
        var error: Error?

        init(states: States, writes: [CheckpointWrite], held: Bool, warn: @escaping @Sendable (String) -> Void) {
            self.states = states
            self.writes = writes
            self.release = held ? DispatchSemaphore(value: 0) : nil
            self.warn = warn
        }

        func run() {
            defer { done.signal() }
            release?.wait()
            do {
                try CheckpointWriter.commit(writes, to: states, warn: warn)
            } catch {
                self.error = error
            }
        }
    }
}
