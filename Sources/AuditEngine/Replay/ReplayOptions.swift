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
    /// Overrides every projection's own limits.
    public var limits: LuaLimits?
    /// Use snapshots: start a rebuild from the newest one of the same code, and take
    /// them per each projection's `snapshot_every`. False (`--no-snapshots`): neither.
    public var useSnapshots = true
    /// Take a snapshot of every projection at the end, whatever its policy (`audit snapshot`).
    public var snapshotNow = false
    /// Called after each batch with the pass's progress.
    public var progress: (@Sendable (ReplayProgress) -> Void)?

    public init() {}
}

/// Progress of a replay pass.
public struct ReplayProgress: Sendable {
    public var position: Int64
    public var start: Int64
    public var end: Int64
    public var eventsRead: Int
    public var seconds: Double
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
}
