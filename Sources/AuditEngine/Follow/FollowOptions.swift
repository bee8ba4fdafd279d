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
    /// The projections folder whose files it watches (nil: none): a projection whose
    /// script or lib module changes is rebuilt beside its live table with the new code
    /// and swapped in once caught up, while the live table goes on with the code of its
    /// build (see `ProjectionFollower`).
    public var folder: String?
    /// How often, at most, it looks at the folder's files (a `stat` of each; a file is
    /// read and hashed only when its size, mtime or inode moved).
    public var codeCheckInterval: Duration = .milliseconds(250)
    /// What it does with a projection file that appears in the folder while it runs.
    public var newFiles = NewFiles.ignore
    /// Seconds a build beside a live table folds before the live tables are brought to
    /// the head again: about the most a build delays what readers see.
    public var buildSlice: Double = 0.2

    /// What a follower does with a projection file new to the folder (DECISIONS 15:
    /// newcomers are built only when asked, except in a database holding none).
    public enum NewFiles: Sendable {
        /// Nothing: it follows the projections it was given (`replay --follow NAME…`).
        case ignore
        /// Says once that it is not built (unless the database holds no projection yet,
        /// where it builds it): `replay --follow`.
        case tell
        /// Builds it and follows it: `replay --follow --add`.
        case build
    }

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
        /// Its first build, which has not reached the head yet: it has no live table
        /// to serve meanwhile (a projection whose live table is followed while newer
        /// code builds beside it is `.following`, with `build` saying where the build is).
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

    /// A build of newer code beside its live table (the folder's code changed), or why
    /// that code could not be built; nil when the live table's code is the folder's.
    public var build: Build?

    /// A build beside the live table, which meanwhile goes on with its own code.
    public struct Build: Sendable, Equatable {
        /// `.building`, or `.failed` with the new code's load or handler error (the
        /// live table goes on with its own code).
        public var state: State
        /// The last seq folded into the build's table.
        public var position: Int64
        /// `ProjectionCode.hash` of the code being built.
        public var codeHash: String?
    }

    /// Events committed that it has not folded yet.
    public var lag: Int64 { max(0, head - position) }
}
