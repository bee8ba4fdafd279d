/// How a `ProjectionFollower` runs.
public struct FollowOptions: Sendable {
    /// How it folds: `parallel`, `limits`, `batchSize`, `useSnapshots`, `rebuild` (the
    /// first catch-up rebuilds), `progress`. `toSeq` and `shouldStop` are its own.
    public var replay = ReplayOptions()
    /// How often it asks SQLite whether anything was committed (`PRAGMA data_version`
    /// on a connection of its own, which reads no events).
    public var pollInterval: Duration = .milliseconds(2)
    /// Seconds of folding between checkpoints while it follows: each catch-up to the
    /// head ends with one anyway, so that readers waiting for the head are released.
    public var checkpointSeconds: Double = 1

    public init() {}
}

/// Where one followed projection is.
public struct FollowStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Catching up from its checkpoint (or building, when its code changed) before it
        /// follows: the replay a follower starts with.
        case catchingUp
        /// At the head, or folding what was just committed.
        case following
        /// A build beside the live table that has not reached the head yet.
        case building
        /// Stopped at this error; the others go on.
        case failed(ProjectionError)
    }

    public var projection: String
    public var state: State
    /// The last seq folded into its table: while following, as of its last checkpoint,
    /// which readers see; while catching up, the replay's progress.
    public var position: Int64
    /// The log's head, as last seen.
    public var head: Int64
    /// Seqs of the log passed per second, over the last second or so.
    public var eventsPerSecond: Double

    /// Events committed that it has not folded yet.
    public var lag: Int64 { max(0, head - position) }
}
