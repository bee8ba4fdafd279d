import Foundation

/// Keeps projections current as any process appends, until stopped: what
/// `audit replay --follow` runs, for a program that embeds the engine.
///
/// `start()` takes the database's replay lock (held until the follower ends) and starts
/// a thread that first replays the projections as `replay` does (from their
/// checkpoints; a projection whose code changed is rebuilt beside its live table), then
/// waits for commits and folds each one's events into the live tables, with a
/// checkpoint at the end of each catch-up, so that a reader waiting for the head is
/// released within milliseconds. Waiting costs one `PRAGMA data_version` every
/// `pollInterval` on a connection of its own; the log is read only after a commit.
///
/// `stop()` makes the batch being folded the last: it is checkpointed and `wait()`
/// returns each projection's outcome. Killed at any moment instead, the next follower
/// (or `replay`) resumes from the last checkpoint: states and position are saved in one
/// transaction, so no event is lost or folded twice. A projection that fails stops
/// (its status says why) and the others go on.
///
/// ```swift
/// let follower = ProjectionFollower(store: store, projections: loaded)
/// try follower.start()
/// // … the program runs; follower.status gives each projection's position and lag …
/// follower.stop()
/// let outcomes = try follower.wait()
/// ```
///
/// Not yet: a projection file that changes while following is not rebuilt until the
/// follower is restarted (which rebuilds it beside the live table, as `replay` does).
///
/// `@unchecked Sendable`: its mutable state (`stopping`, `started`, `statuses`,
/// `samples`, `result`, `heldLock`) is read and written only while `condition` is locked; the runs
/// and VMs are touched only by the follower's own thread.
public final class ProjectionFollower: @unchecked Sendable {
    public let store: EventStore
    public let projections: [Projection]
    public let options: FollowOptions

    private let condition = NSCondition()
    private var stopping = false
    private var started = false
    private var statuses: [FollowStatus]
    /// Per projection, the time and position the rate was last measured from.
    private var samples: [String: (time: ContinuousClock.Instant, position: Int64)] = [:]
    private var result: Result<[ReplayOutcome], any Error>?
    /// The replay lock, from `start` until the thread ends: the only reference to it
    /// outside the thread's `follow`, dropped before `result` is set, so that the lock is
    /// free once `wait` returns.
    private var heldLock: ReplayLock?

    public init(store: EventStore, projections: [Projection], options: FollowOptions = FollowOptions()) {
        self.store = store
        self.projections = projections
        self.options = options
        statuses = projections.map {
            FollowStatus(projection: $0.name, state: .catchingUp, position: 0, head: 0, eventsPerSecond: 0)
        }
    }

    /// Takes the replay lock and starts following on a thread of its own.
    /// - Throws: `StoreError.readOnlyDatabase` for a store opened read-only (a follower
    ///   writes the projections' tables); `.storage` when another replay or follower
    ///   holds the lock, naming it.
    public func start() throws {
        guard store.access == .readWrite else {
            throw StoreError.readOnlyDatabase(
                path: store.path,
                reason: "it was opened read-only, and following writes the projections' tables and checkpoints into it")
        }
        condition.lock()
        defer { condition.unlock() }
        guard !started else { throw StoreError.storage("this follower of \(store.path) was started already") }
        heldLock = try ReplayLock(databasePath: store.path)
        let watcher: CommitWatcher
        do {
            watcher = try CommitWatcher(path: store.path)
        } catch {
            heldLock = nil
            throw error
        }
        started = true
        let thread = Thread { [self] in
            let outcome = Result { try follow(watcher: watcher) }
            condition.lock()
            heldLock = nil
            result = outcome
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "audit.follow"
        thread.stackSize = 8 << 20  // as the main thread's: JSON and Lua recursion while folding
        thread.start()
    }

    /// Asks the follower to stop: the batch being folded is checkpointed, then it ends
    /// (see `wait`). Returns at once.
    public func stop() {
        condition.lock()
        stopping = true
        condition.unlock()
    }

    /// Waits for the follower to end (after `stop()`, or an error of the database).
    /// - Returns: each projection's outcome, as `replay` gives them.
    /// - Throws: what ended it, when not `stop()`: a storage error.
    public func wait() throws -> [ReplayOutcome] {
        try wait(seconds: .infinity)!
    }

    /// As `wait()`, for at most `seconds`; nil when it still runs then.
    public func wait(seconds: Double) throws -> [ReplayOutcome]? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: min(seconds, 1e9))
        while result == nil, condition.wait(until: deadline) {}
        return try result?.get()
    }

    /// Where each projection is, in the order given.
    public var status: [FollowStatus] {
        condition.lock()
        defer { condition.unlock() }
        return statuses
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// The follower's thread: replays, then folds what each commit brings, until stopped.
    private func follow(watcher: CommitWatcher) throws -> [ReplayOutcome] {
        condition.lock()
        let replayLock = heldLock!
        condition.unlock()
        var replayOptions = options.replay
        replayOptions.toSeq = nil
        replayOptions.shouldStop = { [weak self] in self?.isStopping ?? true }
        let userProgress = options.replay.progress
        var passOptions = replayOptions
        passOptions.rebuild = false
        passOptions.checkpointSeconds = options.checkpointSeconds
        // Each projection's outcome from the replays, and the runs that follow live tables.
        var replayed: [String: ReplayOutcome] = [:]
        var runs: [ProjectionRun] = []
        var pending = projections  // to replay: at first all, then builds not promoted yet
        while true {
            if !pending.isEmpty {
                let names = Set(pending.map(\.name))
                replayOptions.progress = { [weak self] progress in
                    self?.update(names) { status in
                        status.head = max(status.head, progress.end)
                        return progress.position
                    }
                    userProgress?(progress)
                }
                let outcomes = try store.replay(pending, options: replayOptions, holding: replayLock)
                replayOptions.rebuild = false  // a rebuild asked for is done by the first replay
                var building: [Projection] = []
                let byName = Dictionary(outcomes.map { ($0.projection, $0) }, uniquingKeysWith: { first, _ in first })
                for projection in pending {
                    guard let outcome = byName[projection.name] else { continue }
                    let earlier = replayed[projection.name]?.eventsApplied ?? 0
                    replayed[projection.name] = outcome
                    replayed[projection.name]!.eventsApplied += earlier
                    switch outcome.status {
                    case .failed(let error):
                        update([projection.name]) { status in
                            status.state = .failed(error)
                            status.position = outcome.position
                            return nil
                        }
                    case .building:
                        building.append(projection)
                        update([projection.name]) { status in
                            status.state = .building
                            return outcome.position
                        }
                    case .upToDate, .updated, .rebuilt:
                        runs.append(try liveRun(projection, options: passOptions))
                    }
                }
                pending = building
            }
            if isStopping { break }
            let version = try watcher.version()  // before the head: a commit after it changes it
            let head = try watcher.head()
            let behind = runs.filter { $0.isActive && $0.position < head }
            record(runs, head: head)
            if behind.isEmpty {
                if pending.isEmpty { try waitForCommit(after: version, watcher: watcher, runs: runs, head: head) }
                continue
            }
            passOptions.progress = userProgress
            // A pass ends with a checkpoint: long catch-ups in steps, so that the statuses
            // (which show what readers see) move on meanwhile.
            let end = min(head, behind.map(\.position).min()! + Self.passLength)
            try store.pass(behind, end: end, selection: EventSelection(types: []), options: passOptions, states: store)
            record(runs, head: head)
        }
        return projections.compactMap { projection in
            guard var outcome = replayed[projection.name] else { return nil }
            guard let run = runs.first(where: { $0.projection.name == projection.name }) else { return outcome }
            outcome.eventsApplied += run.eventsApplied
            if let failure = run.failure {
                outcome.status = .failed(failure)
                outcome.position = run.storedPosition
            } else {
                if outcome.status == .upToDate, run.position > run.startPosition { outcome.status = .updated }
                outcome.position = run.position
            }
            return outcome
        }
    }

    /// The most seqs a pass over the log folds while following.
    static let passLength: Int64 = 100_000

    /// A run on `projection`'s live table, from its checkpoint.
    private func liveRun(_ projection: Projection, options: ReplayOptions) throws -> ProjectionRun {
        try store.writeTransaction { db in
            guard let live = try ReadModel.record(db, name: projection.name, build: false) else {
                throw StoreError.storage("projection \(projection.name) has no table in \(store.path) after its replay")
            }
            return try store.liveRun(projection, live, db, options: options)
        }
    }

    /// Returns once something was committed after `version` was read, or when asked to
    /// stop; meanwhile keeps the rates current.
    private func waitForCommit(after version: Int64, watcher: CommitWatcher, runs: [ProjectionRun], head: Int64) throws {
        let interval = UInt32(max(100, min(1_000_000, options.pollInterval.components.attoseconds / 1_000_000_000_000
            + options.pollInterval.components.seconds * 1_000_000)))
        var lastRecord = ContinuousClock.now
        while !isStopping {
            if try watcher.version() != version { return }
            usleep(interval)
            if ContinuousClock.now - lastRecord > .milliseconds(500) {
                record(runs, head: head)
                lastRecord = ContinuousClock.now
            }
        }
    }

    /// Records the runs' positions and the head in their statuses, and their rates.
    private func record(_ runs: [ProjectionRun], head: Int64) {
        let byName = Dictionary(runs.map { ($0.projection.name, $0) }, uniquingKeysWith: { first, _ in first })
        update(Set(byName.keys)) { status in
            let run = byName[status.projection]!
            status.head = max(status.head, head)
            guard let failure = run.failure else {
                status.state = .following
                return run.position
            }
            status.state = .failed(failure)
            status.position = run.storedPosition
            status.eventsPerSecond = 0
            return nil
        }
    }

    /// Changes the statuses of the projections named: `change` changes each one and
    /// returns its new position, if any, from which its rate is measured (over a second
    /// at least).
    private func update(_ names: Set<String>, _ change: (inout FollowStatus) -> Int64?) {
        let now = ContinuousClock.now
        condition.lock()
        defer { condition.unlock() }
        for index in statuses.indices where names.contains(statuses[index].projection) {
            let name = statuses[index].projection
            guard let position = change(&statuses[index]) else { continue }
            statuses[index].position = position
            let sample = samples[name] ?? (now, position)
            let elapsed = (now - sample.time).seconds
            if elapsed >= 1 {
                statuses[index].eventsPerSecond = Double(position - sample.position) / elapsed
                samples[name] = (now, position)
            } else if samples[name] == nil {
                samples[name] = sample
            }
        }
    }
}
