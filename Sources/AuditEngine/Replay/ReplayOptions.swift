import Foundation

/// How `replay` runs.
public struct ReplayOptions: Sendable {
    /// Stop at this seq instead of the log's head (a build is not promoted before it
    /// reaches the head).
    public var toSeq: Int64?
    /// Rebuild from seq 1 beside the live table, even if the code did not change.
    public var rebuild = false
    /// Events read per read transaction.
    public var batchSize = 20_000
    /// Events between checkpoints (states and position saved in one transaction); nil:
    /// no count, only `checkpointSeconds`. Each checkpoint writes every state changed
    /// since the last, so fewer checkpoints write less; a crash redoes what came after
    /// the last one.
    public var checkpointEvery: Int?
    /// Seconds of work between checkpoints. A checkpoint is also taken whenever a
    /// projection's VM holds more than half its memory limit, so that its states can be
    /// written out and dropped instead of running into the limit.
    public var checkpointSeconds: Double = 30
    /// Workers for projections keyed by stream: their keys are split by a stable hash
    /// of the stream across this many VMs, folding concurrently. The states are the same
    /// for any number. Projections keyed by a function or "global" use one.
    public var parallel = 1
    /// Limits given for this run: each replaces that limit of every projection, the
    /// others stay each projection's own (`LuaLimitOverrides`).
    public var limits: LuaLimitOverrides?
    /// Use snapshots: start a rebuild from the newest one of the same code, and take
    /// them per each projection's `snapshot_every`. False (`--no-snapshots`): neither.
    public var useSnapshots = true
    /// Take a snapshot of every projection at the end, whatever its policy (`audit snapshot`).
    public var snapshotNow = false
    /// Called after each batch with the pass's progress.
    public var progress: (@Sendable (ReplayProgress) -> Void)?
    /// Asked after each batch: true makes that batch the last, checkpointed, and the
    /// replay returns (a build not at the head stays a build, resumed next time).
    public var shouldStop: (@Sendable () -> Bool)?
    /// Tests: each checkpoint commits only when the replay next waits for it (before the
    /// next checkpoint, or at the end), so that every state a VM drops is read back
    /// while the checkpoint that stores it is still in flight.
    var holdCheckpoints = false
    /// Tests: the budget of the cache of states read back, instead of half the VMs' limits.
    var stateCacheBudget: Int?

    public init() {}

    func stopRequested() -> Bool { shouldStop?() ?? false }
}

/// Progress of a replay pass.
public struct ReplayProgress: Sendable {
    public var position: Int64
    public var start: Int64
    public var end: Int64
    public var eventsRead: Int
    public var seconds: Double
    /// Where the pass's time went so far. The pass's last report comes after its last
    /// checkpoint has committed.
    public var timings = ReplayTimings()
}

/// Where a replay pass's wall time went, on the thread that drives it: what bounds a
/// replay, and so whether more `--parallel` workers can help. The reading of events and
/// the writing of checkpoints run on threads of their own; they show here only as the
/// time the pass waited for them.
public struct ReplayTimings: Sendable, Equatable, Codable {
    /// Folding events into the VMs (with `--parallel`, until the slowest partition of
    /// each batch is done).
    public var folding: Double = 0
    /// Serialising changed states at checkpoints and snapshots (partitions concurrently).
    public var serializing: Double = 0
    /// Waiting for the reader thread's next batch of events.
    public var waitingForEvents: Double = 0
    /// Waiting for the checkpoint writer before the last checkpoint (each checkpoint
    /// waits for the one before it to commit).
    public var waitingForWriter: Double = 0
    /// Waiting for the last checkpoint to commit, after the last event was folded.
    public var lastCheckpoint: Double = 0
    /// States read back while folding, and the time that took, summed over partitions
    /// (part of `folding`): a key's first event in a replay that updates a table (from
    /// the table), and any event whose key's state its VM dropped (a VM past half its
    /// memory limit drops its states at checkpoints; they are read back from a cache of
    /// the states written since, else from the table). A rebuild reads none back until
    /// its VMs drop states.
    public var statesReadBack = 0
    public var readingBackStates: Double = 0

    public init() {}

    /// Both passes' times, added.
    public static func += (a: inout ReplayTimings, b: ReplayTimings) {
        a.folding += b.folding
        a.serializing += b.serializing
        a.waitingForEvents += b.waitingForEvents
        a.waitingForWriter += b.waitingForWriter
        a.lastCheckpoint += b.lastCheckpoint
        a.statesReadBack += b.statesReadBack
        a.readingBackStates += b.readingBackStates
    }

    /// One line for people: "folding 3.99 s, serialising states 0.67 s, …".
    public var summary: String {
        let readBack = statesReadBack == 0 ? "" : String(
            format: " (of which reading %ld states back %.2f s)", statesReadBack, readingBackStates)
        return String(format: "folding %.2f s", folding) + readBack + String(
            format: ", serialising states %.2f s, waiting for events %.2f s, for the checkpoint writer %.2f s, for the last checkpoint %.2f s",
            serializing, waitingForEvents, waitingForWriter, lastCheckpoint)
    }
}

/// What a replay did to one projection.
public struct ReplayOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        /// Already at the head: nothing to do.
        case upToDate
        /// Caught up incrementally from its checkpoint.
        case updated
        /// Rebuilt beside the live table and promoted.
        case rebuilt
        /// A build that has not reached the head yet (e.g. with --to-seq); the old
        /// table keeps serving.
        case building
        case failed(ProjectionError)
    }

    public var projection: String
    public var status: Status
    /// The last seq folded.
    public var position: Int64
    /// Events delivered to its handlers.
    public var eventsApplied: Int
    /// Where the replay's time went: of all the passes over the log this replay made
    /// (projections replayed together share them).
    public var timings = ReplayTimings()
}
