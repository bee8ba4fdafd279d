import Foundation
import GRDB

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
/// With `options.folder`, it watches the projections' files (`stat`, at most every
/// `codeCheckInterval`). When a projection's code changes (its script or a lib
/// module), its live table goes on being folded with the code of its build (stored in
/// the code history) while the new code is built from seq 1 into a table beside it (in
/// slices of `buildSlice` seconds, between which the live tables are brought to the
/// head); once the build reaches the head it replaces the live table in one
/// transaction, which records its code (a `CodeBuilt` event), and following goes on
/// with the new code. New code that does not load or fails while building is said
/// (a warning, and `status[…].build`), and the live table goes on with its own code; a
/// further change restarts the build with the newest code. Stopped or killed
/// mid-build, the next follower resumes both from their checkpoints. A projection at
/// start whose table's code differs from the folder's is treated the same way.
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

    var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// The follower's thread: replays, then folds what each commit brings (and builds
    /// newer code beside live tables), until stopped.
    private func follow(watcher: CommitWatcher) throws -> [ReplayOutcome] {
        condition.lock()
        let replayLock = heldLock!
        condition.unlock()
        var replayOptions = options.replay
        replayOptions.toSeq = nil
        replayOptions.shouldStop = { [weak self] in self?.isStopping ?? true }
        var passOptions = replayOptions
        passOptions.rebuild = false
        passOptions.checkpointSeconds = options.checkpointSeconds
        // Projections whose table has the folder's code are replayed as `replay` does;
        // the others are built beside their live tables, which go on meanwhile.
        let (current, beside) = try store.writeTransaction { db in try partition(db) }
        let names = Set(current.map(\.name))
        let userProgress = options.replay.progress
        replayOptions.progress = { [weak self] progress in
            self?.update(names) { status in
                status.head = max(status.head, progress.end)
                return progress.position
            }
            userProgress?(progress)
        }
        let outcomes = try store.replay(current, options: replayOptions, holding: replayLock)
        var followed: [FollowedProjection] = []
        for projection in current {
            let slot = FollowedProjection(projection)
            slot.outcome = outcomes.first { $0.projection == projection.name }
            guard let outcome = slot.outcome else { continue }
            if case .failed(let error) = outcome.status {
                update([projection.name]) { status in
                    status.state = .failed(error)
                    status.position = outcome.position
                    return nil
                }
            } else {
                slot.live = try liveRun(projection, options: passOptions)
            }
            followed.append(slot)
        }
        for (projection, live) in beside {
            let slot = FollowedProjection(projection)
            if let live {
                do {
                    slot.live = try liveRun(live, options: passOptions)
                } catch let error as ProjectionError {
                    store.logger.warning("projection \(projection.name): the stored code of its live table does not run here (\(error)); the table stays where it is until the build of the folder's code replaces it")
                }
            }
            try startBuild(slot, projection, rebuild: replayOptions.rebuild)
            followed.append(slot)
        }
        followed.sort { a, b in
            (projections.firstIndex { $0.name == a.name } ?? .max) < (projections.firstIndex { $0.name == b.name } ?? .max)
        }
        let code = options.folder.map { CodeWatch(folder: $0) }
        var buildBatch = min(1_000, passOptions.batchSize)  // events per batch of a build, see `buildSlice`
        while !isStopping {
            if let code, let noticed = code.due(every: options.codeCheckInterval) {
                try codeChanged(noticed, watch: code, followed: &followed)
            }
            let version = try watcher.version()  // before the head: a commit after it changes it
            let head = try watcher.head()
            let lives = followed.compactMap(\.live)
            let behind = lives.filter { $0.isActive && $0.position < head }
            record(followed, head: head)
            if !behind.isEmpty {
                // A pass ends with a checkpoint: long catch-ups in steps, so that the
                // statuses (which show what readers see) move on meanwhile.
                passOptions.progress = options.replay.progress
                let end = min(head, behind.map(\.position).min()! + Self.passLength)
                try store.pass(behind, end: end, selection: EventSelection(types: []), options: passOptions, states: store)
                try restartParked(followed, \.live, options: passOptions)
                record(followed, head: head)
            }
            // Then a slice of the builds, so that neither waits for the other.
            if followed.contains(where: { $0.build != nil }) {
                try buildSlice(followed, head: head, options: passOptions, batchSize: &buildBatch)
                continue
            }
            if !behind.isEmpty { continue }
            try waitForCommit(after: version, watcher: watcher, code: code, followed: followed, head: head)
        }
        return followed.compactMap(\.finalOutcome)
    }

    /// Parks the keys that failed in a pass of the runs at `run` (`on_error = "park"`),
    /// and puts in each one's place a run that resumes from its checkpoint, as `replay` does.
    func restartParked(_ followed: [FollowedProjection], _ run: ReferenceWritableKeyPath<FollowedProjection, ProjectionRun?>, options: ReplayOptions) throws {
        let slots = followed.filter { $0[keyPath: run] != nil }
        var runs = slots.map { $0[keyPath: run]! }
        guard try store.restartParked(&runs, options: options) else { return }
        for (slot, resumed) in zip(slots, runs) { slot[keyPath: run] = resumed }
    }

    /// The most seqs a pass over the log folds while following.
    static let passLength: Int64 = 100_000

    /// The projections to replay as `replay` does (their tables have their code, or
    /// they clash with another's table, which the replay says), and the others, each
    /// with the code of its live table when one can be folded (its build's stored code).
    private func partition(_ db: Database) throws -> ([Projection], [(Projection, Projection?)]) {
        let collisions = ProjectionNames.collisions(projections.map { ($0.name, $0.file) })
        var current: [Projection] = [], beside: [(Projection, Projection?)] = []
        for projection in projections {
            let live = try ReadModel.record(db, name: projection.name, build: false)
            let clashes = try collisions[projection.name] != nil || ReadModel.liveName(db, sameTableAs: projection.name) != nil
            let sameCode = live.map { $0.codeHash == projection.codeHash && $0.version == projection.version } == true
            if clashes || sameCode && !options.replay.rebuild {
                current.append(projection)
                continue
            }
            guard let live, try db.tableExists(projection.name) else {
                beside.append((projection, nil))
                continue
            }
            let build = try CodeHistory.build(db, name: projection.name, codeHash: live.codeHash)
            var code: Projection?
            do {
                code = try store.tableCode(db, record: live, build: build, folder: options.folder, limits: options.replay.limits.overDefaults)
            } catch {
                store.logger.warning("projection \(projection.name): the code of its live table cannot be loaded from the code history (\(error))")
            }
            if code == nil {
                store.logger.warning("projection \(projection.name): its live table stays at seq \(live.position) until the build of the folder's code replaces it, since the code that built it cannot be run")
            }
            beside.append((projection, code))
        }
        return (current, beside)
    }

    /// A run on `projection`'s live table, from its checkpoint.
    func liveRun(_ projection: Projection, options: ReplayOptions) throws -> ProjectionRun {
        try store.writeTransaction { db in
            guard let live = try ReadModel.record(db, name: projection.name, build: false) else {
                throw StoreError.storage("projection \(projection.name) has no table in \(store.path) after its replay")
            }
            return try store.liveRun(projection, live, db, options: options)
        }
    }

    /// Returns once something was committed after `version` was read, when the folder's
    /// code is due to be looked at, or when asked to stop; meanwhile keeps the rates current.
    private func waitForCommit(
        after version: Int64, watcher: CommitWatcher, code: CodeWatch?, followed: [FollowedProjection], head: Int64
    ) throws {
        let interval = UInt32(max(100, min(1_000_000, options.pollInterval.components.attoseconds / 1_000_000_000_000
            + options.pollInterval.components.seconds * 1_000_000)))
        var lastRecord = ContinuousClock.now
        while !isStopping {
            if try watcher.version() != version { return }
            if let code, code.isDue(every: options.codeCheckInterval) { return }
            usleep(interval)
            if ContinuousClock.now - lastRecord > .milliseconds(500) {
                record(followed, head: head)
                lastRecord = ContinuousClock.now
            }
        }
    }

    /// Records the live runs' positions and the head in their statuses, and their
    /// rates; and where each build beside them is.
    func record(_ followed: [FollowedProjection], head: Int64) {
        let byName = Dictionary(followed.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        update(Set(byName.keys)) { status in
            let slot = byName[status.projection]!
            status.head = max(status.head, head)
            if let build = slot.build {
                status.build = FollowStatus.Build(state: .building, position: build.position, codeHash: build.projection.codeHash)
            } else if let failure = slot.buildFailure {
                status.build = FollowStatus.Build(state: .failed(failure), position: slot.buildPosition, codeHash: slot.buildHash)
            } else {
                status.build = nil
            }
            guard let run = slot.live else {
                // No live table yet: its first build is what readers will get.
                status.state = slot.build == nil ? status.state : .building
                return slot.build?.position
            }
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
    func update(_ names: Set<String>, _ change: (inout FollowStatus) -> Int64?) {
        let now = ContinuousClock.now
        condition.lock()
        defer { condition.unlock() }
        for name in names where !statuses.contains(where: { $0.projection == name }) {
            // A newcomer to the folder, built while following.
            statuses.append(FollowStatus(projection: name, state: .building, position: 0, head: 0, eventsPerSecond: 0))
        }
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
