import CLuaSandbox
import Foundation
import GRDB

extension EventStore {
    /// Brings projections up to date: each from its checkpoint, or — when its code or
    /// version changed, or with `rebuild` — rebuilt from seq 1 in a table beside the
    /// live one, which it replaces atomically once it has caught up.
    ///
    /// One replay runs at a time per database (another one fails at once, see
    /// `ReplayLock`). All projections share one pass over the log. A projection that fails is marked
    /// failed and stops; the others go on. Killed at any moment, a replay resumes at the
    /// last checkpoint with no event applied twice or lost: states and position are
    /// saved in one transaction.
    public func replay(_ projections: [Projection], options: ReplayOptions = ReplayOptions()) throws -> [ReplayOutcome] {
        try replay(projections, options: options, holding: ReplayLock(databasePath: path))
    }

    /// `replay`, by a caller that holds the replay lock (a read's catch-up, a follower
    /// between its passes).
    func replay(_ projections: [Projection], options: ReplayOptions, holding lock: ReplayLock) throws -> [ReplayOutcome] {
        defer { withExtendedLifetime(lock) {} }
        let started = ContinuousClock.now
        var outcomes: [String: ReplayOutcome] = [:]
        var runs: [ProjectionRun] = []
        // Names that would share a table (SQLite folds case) fail; the others go on.
        let collisions = ProjectionNames.collisions(projections.map { ($0.name, $0.file) })
        try writeTransaction { db in
            for projection in projections {
                var clash = collisions[projection.name]
                if clash == nil, let other = try ReadModel.liveName(db, sameTableAs: projection.name) {
                    clash = "\(projection.file): the database holds projection \(other), whose table is this one's (SQLite compares table names without case); rename the file back to \(other).lua"
                }
                if let clash {
                    outcomes[projection.name] = ReplayOutcome(
                        projection: projection.name, status: .failed(ProjectionError(projection: projection.name, message: clash)),
                        position: 0, eventsApplied: 0)
                    continue
                }
                let live = try ReadModel.record(db, name: projection.name, build: false)
                if !options.rebuild, let live, live.codeHash == projection.codeHash, live.version == projection.version {
                    // A table built before the code history: its code is the folder's, recorded now.
                    if try CodeHistory.build(db, name: projection.name, codeHash: projection.codeHash) == nil {
                        try CodeHistory.record(db, store: self, projection: projection, position: live.position, recordedLater: true)
                    }
                    runs.append(try liveRun(projection, live, db, options: options))
                    continue
                }
                runs.append(try buildRun(projection, db, options: options))
            }
        }

        // Passes until every build has caught up with the head (appends may arrive
        // while it builds), at most a few.
        var timings = ReplayTimings()
        var passes = 0
        while passes < 4 {
            let head = try self.head().seq
            let end = min(options.toSeq ?? head, head)
            timings += try pass(
                runs.filter { $0.isActive && ($0.position < end || $0.wantsSnapshot) }, end: end,
                selection: EventSelection(types: []), options: options, states: self)
            // Keys that failed are parked and their runs start again from their checkpoints
            // (each restart parks at least one more key, so this ends).
            if try restartParked(&runs, options: options) { continue }
            passes += 1
            let promotable = runs.filter { $0.isActive && $0.target.isBuild && $0.position >= head }
            if !promotable.isEmpty {
                try promote(promotable)
                for run in promotable {
                    outcomes[run.projection.name] = ReplayOutcome(
                        projection: run.projection.name, status: .rebuilt, position: run.position, eventsApplied: run.eventsApplied,
                        timings: timings)
                }
                runs.removeAll { run in promotable.contains { $0 === run } }
            }
            if options.toSeq != nil || options.stopRequested() || !runs.contains(where: { $0.isActive && $0.target.isBuild }) { break }
        }

        let promoted = projections.filter { outcomes[$0.name]?.status == .rebuilt }
        var folded = outcomes.values.filter { $0.status == .rebuilt }.map { ($0.projection, Int64(0), $0.position) }
        folded += runs.filter { $0.position > $0.startPosition }.map { ($0.projection.name, $0.startPosition, $0.position) }
        try finish(skipping: promoted + runs.filter(\.isActive).map(\.projection), folded: folded, seconds: (ContinuousClock.now - started).seconds)
        for run in runs {
            let status: ReplayOutcome.Status
            if let failure = run.failure {
                status = .failed(failure)
            } else if run.target.isBuild {
                status = .building
            } else {
                status = run.position == run.startPosition ? .upToDate : .updated
            }
            // A failed run's table stays where its last checkpoint left it.
            let position = run.failure == nil ? run.position : run.storedPosition
            outcomes[run.projection.name] = ReplayOutcome(
                projection: run.projection.name, status: status, position: position, eventsApplied: run.eventsApplied,
                timings: timings)
        }
        return projections.compactMap { outcomes[$0.name] }
    }

    /// Parks the keys the runs found failing, and replaces each such run by one resumed
    /// from its last checkpoint that skips their events (`ParkedKeys`).
    /// - Returns: whether any run was restarted.
    func restartParked(_ runs: inout [ProjectionRun], options: ReplayOptions) throws -> Bool {
        let parking = runs.filter { $0.failure == nil && $0.needsRestart }
        guard !parking.isEmpty else { return false }
        try writeTransaction { db in
            for run in parking {
                try ParkedKeys.park(db, table: run.target.table, run.parkRequests)
                guard let record = try ReadModel.record(db, name: run.projection.name, build: run.target.isBuild) else { continue }
                let resumed = try ProjectionRun(
                    projection: run.projection, target: run.target, position: record.position, times: FoldedTimes(record),
                    limits: options.limits, parallel: options.parallel, cacheBudget: options.stateCacheBudget)
                try scheduleSnapshots(resumed, db, options: options)
                try resumed.honourParked(ParkedKeys.firstSeqs(db, table: run.target.table), restarts: true)
                runs[runs.firstIndex { $0 === run }!] = resumed
            }
        }
        for run in parking {
            for request in run.parkRequests {
                logger.warning("projection \(run.projection.name): key \(request.key) parked at seq \(request.seq): \(request.error)")
            }
        }
        return true
    }

    /// Moves the positions of `skipping` at the head over the events they do not
    /// handle that the replay itself appended (`CodeBuilt`), or that came since; and
    /// records, for `audit projections`, how far each projection `folded` moved
    /// (name, from, to) in `seconds`.
    private func finish(skipping: [Projection], folded: [(String, Int64, Int64)], seconds: Double) throws {
        guard !skipping.isEmpty || !folded.isEmpty else { return }
        try writeTransaction { db in
            let head = try ChainHead.seq(db)
            for projection in skipping {
                try ReadModel.skipUnhandled(db, name: projection.name, handledTypes: projection.handledTypes, head: head)
            }
            for (name, from, to) in folded {
                try ReplayStats.record(db, projection: name, from: from, to: to, seconds: seconds)
            }
        }
    }

    /// One pass over seq (min position, end]: every run sees each event after its own
    /// position, in seq order. A second thread reads the events ahead, and a third
    /// commits the checkpoints (`CheckpointWriter`). The runs' states are read from and
    /// written to `states`; `selection` narrows the events further than the runs'
    /// handled types (its own types are ignored).
    /// - Returns: where its time went.
    @discardableResult
    func pass(
        _ runs: [ProjectionRun], end: Int64, selection: EventSelection, options: ReplayOptions, states: some StateDatabase
    ) throws -> ReplayTimings {
        var timings = ReplayTimings()
        guard let from = runs.map(\.position).min() else { return timings }
        let writer = CheckpointWriter(
            states: states, holdUntilWaited: options.holdCheckpoints, warn: { [logger] in logger.warning("\($0)") })
        defer { writer.abandon() }
        if from >= end {
            // Nothing to read; a snapshot asked for is still taken.
            try checkpoint(runs.filter(\.wantsSnapshot), full: true, end: end, writer: writer, timings: &timings)
            try writer.wait()
            timings.lastCheckpoint = writer.waited.seconds
            return timings
        }
        // The partitions count the states they read back in this pass.
        for partition in runs.flatMap(\.partitions) {
            partition.statesReadBack = 0
            partition.readingBack = .zero
        }
        var selection = selection
        selection.types = Set(runs.flatMap(\.projection.handledTypes)).sorted()
        selection.allTypes = runs.contains { $0.projection.handlesEveryType }
        selection.fields = runs.reduce(0) { $0 | $1.projection.eventFields }
        let clock = ContinuousClock.now
        var eventsRead = 0
        var reached = from
        var sinceCheckpoint = 0
        var lastCheckpoint = ContinuousClock.now
        let reader = EventBatchReader(pool: pool, from: from, end: end, selection: selection, batchSize: options.batchSize)
        defer { reader.cancel() }
        while let batch = timed(&timings.waitingForEvents, { reader.next() }) {
            if let error = batch.error { throw (error as? DatabaseError).map(storeError) ?? error }
            let active = runs.filter(\.isActive)
            if active.isEmpty { break }
            for run in active where !batch.skipped.isEmpty { run.noteSkipped(batch.skipped) }
            if batch.count > 0 {
                try timed(&timings.folding) {
                    if active.contains(where: { $0.partitions.count > 1 }) {
                        try foldInParallel(batch, active, states: states)
                    } else {
                        // A snapshot for reloading evicted states: it sees every committed checkpoint.
                        try states.readStates { db in
                            batch.withEvents { events in
                                for run in active {
                                    run.partitions[0].apply(
                                        events, from: batch.firstRow(after: run.position), split: nil, projection: run.projection.name
                                    ) { try run.storedState($0, db) }
                                }
                            }
                        }
                    }
                }
            }
            for run in active where run.isActive && run.position < batch.through {
                run.position = batch.through
                run.times.include(batch.times)
            }
            try recordFailures(runs, writer: writer)
            eventsRead += batch.count
            sinceCheckpoint += batch.count
            // Asked to stop: this batch is the last, and checkpointed.
            let stopping = options.stopRequested()
            let due = stopping || batch.through >= end
                || sinceCheckpoint >= (options.checkpointEvery ?? Int.max)
                || (ContinuousClock.now - lastCheckpoint).seconds >= options.checkpointSeconds
                || runs.contains { $0.isActive && $0.needsMemory }
            if due {
                try checkpoint(runs, full: true, end: end, writer: writer, timings: &timings)
                sinceCheckpoint = 0
                lastCheckpoint = ContinuousClock.now
            } else if runs.contains(where: { $0.isActive && $0.wantsSnapshot }) {
                try checkpoint(runs.filter(\.wantsSnapshot), full: false, end: end, writer: writer, timings: &timings)
            }
            timings.waitingForWriter = writer.waited.seconds
            reached = batch.through
            options.progress?(ReplayProgress(
                position: batch.through, start: from, end: end, eventsRead: eventsRead,
                seconds: (ContinuousClock.now - clock).seconds, timings: timings))
            if stopping { break }
        }
        let waitedBefore = writer.waited
        try writer.wait()
        timings.lastCheckpoint = (writer.waited - waitedBefore).seconds
        for partition in runs.flatMap(\.partitions) {
            timings.statesReadBack += partition.statesReadBack
            timings.readingBackStates += partition.readingBack.seconds
        }
        try recordFailures(runs, writer: writer)
        try refoldParkedInPlace(runs, selection: selection, options: options, states: states)
        options.progress?(ReplayProgress(
            position: reached, start: from, end: end, eventsRead: eventsRead,
            seconds: (ContinuousClock.now - clock).seconds, timings: timings))
        return timings
    }

    /// `body`'s result, adding the time it took to `total` (seconds).
    private func timed<T>(_ total: inout Double, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { total += (ContinuousClock.now - start).seconds }
        return try body()
    }

    /// Saves the active runs' changed states and positions (and the snapshots due) in
    /// one transaction, committed by `writer` while the replay goes on; with `full`
    /// false, only the snapshots due (see `ProjectionRun.planCheckpoint`). States are
    /// serialised first, the partitions concurrently, while the previous checkpoint
    /// may still be committing.
    private func checkpoint(
        _ runs: [ProjectionRun], full: Bool, end: Int64, writer: CheckpointWriter<some StateDatabase>, timings: inout ReplayTimings
    ) throws {
        timed(&timings.serializing) {
            for run in runs where run.isActive { run.serializeStates(describe: describeEvent) }
        }
        try writer.wait()  // plans build on what the previous checkpoint left
        let writing = runs.filter(\.isActive)
        try writer.submit(writing.map { $0.planCheckpoint(full: full) })
        // A VM past half its memory lets go of its states, now that they are written
        // out, before it folds on (later, it would also drop changes not written yet).
        if writing.contains(where: { $0.isActive && $0.needsMemory }) {
            for run in writing where run.isActive {
                // Told once, and not at the end, where nothing is read back any more.
                guard try run.trimMemory(), !run.warnedOfEviction, run.position < end else { continue }
                run.warnedOfEviction = true
                let limit = (run.partitions.first?.vm.memoryLimit ?? 0) >> 20
                let message = "projection \(run.projection.name): its states outgrew half its memory limit (\(limit) MB) at seq "
                    + "\(run.position); from here on they are dropped at each checkpoint and read back as their "
                    + "keys come up again, which is much slower. Give it more memory: limits = { memory_mb = … } in the "
                    + "projection, or audit replay --memory-mb … (see docs/operations.md)"
                logger.warning("\(message)")
            }
        }
        try recordFailures(runs, writer: writer)
    }

    /// The handler, id and stream of the event at `seq`, for a failure that names it.
    private func describeEvent(_ seq: Int64) -> String? {
        guard let event = try? events(EventFilter(fromSeq: seq, toSeq: seq)).first else { return nil }
        return eventDescription(type: event.type, id: event.id, stream: event.stream)
    }

    /// A run that builds `projection` into its table beside the live one: on from the
    /// checkpoint of an interrupted build of the same code (unless `options.rebuild`),
    /// else from nothing, or from its code's newest usable snapshot.
    func buildRun(_ projection: Projection, _ db: Database, options: ReplayOptions) throws -> ProjectionRun {
        let target = ReadModelTarget(projection: projection.name, isBuild: true, columns: projection.columns)
        let build = try ReadModel.record(db, name: projection.name, build: true)
        var position: Int64 = 0
        var times = FoldedTimes()
        if !options.rebuild, let build, build.codeHash == projection.codeHash, build.version == projection.version,
           try db.tableExists(target.table) {
            position = build.position  // resume an interrupted build
            times = FoldedTimes(build)
        } else {
            try ReadModel.startBuild(db, projection: projection, target: target)
            if options.useSnapshots, let start = try startFromSnapshot(db, projection: projection, target: target, limits: options.limits) {
                (position, times) = start
            }
        }
        let run = try ProjectionRun(
            projection: projection, target: target, position: position, times: times, limits: options.limits,
            parallel: options.parallel, cacheBudget: options.stateCacheBudget)
        try scheduleSnapshots(run, db, options: options)
        try run.honourParked(ParkedKeys.firstSeqs(db, table: target.table), restarts: true)
        return run
    }

    /// Replaces the live tables of `builds` (runs that reached the head) with theirs, in
    /// one transaction that also records each one's code (`CodeHistory`, a `CodeBuilt`
    /// event) and drops the snapshots of code that no longer runs.
    /// - Parameter stats: by projection, where its build started and how long it folded
    ///   (a follower's, built slice by slice), recorded as its replay stats (`audit
    ///   projections`); a replay records its own when it finishes.
    func promote(_ builds: [ProjectionRun], stats: [String: (from: Int64, seconds: Double)] = [:]) throws {
        try writeTransaction { db in
            for run in builds {
                if let stats = stats[run.projection.name] {
                    try ReplayStats.record(db, projection: run.projection.name, from: stats.from, to: run.position, seconds: stats.seconds)
                }
                try ReadModel.promote(db, projection: run.projection, position: run.position, times: run.times)
                try CodeHistory.record(db, store: self, projection: run.projection, position: run.position)
                // Snapshots of code that no longer runs are never used again.
                try Snapshots.dropOtherChains(
                    db, projection: run.projection.name, keeping: try Snapshots.chain(db, projection: run.projection, create: false))
            }
        }
    }

    /// A run that folds on into `projection`'s live table from where `live`, its catalog
    /// record, says the table is.
    func liveRun(_ projection: Projection, _ live: ProjectionRecord, _ db: Database, options: ReplayOptions) throws -> ProjectionRun {
        let target = ReadModelTarget(projection: projection.name, isBuild: false, columns: projection.columns)
        let run = try ProjectionRun(
            projection: projection, target: target, position: live.position, times: FoldedTimes(live),
            limits: options.limits, parallel: options.parallel, cacheBudget: options.stateCacheBudget)
        try scheduleSnapshots(run, db, options: options)
        try run.honourParked(ParkedKeys.firstSeqs(db, table: target.table), restarts: true)
        return run
    }

    /// Sets up `run`'s snapshots per its projection's policy (none with `--no-snapshots`).
    private func scheduleSnapshots(_ run: ProjectionRun, _ db: Database, options: ReplayOptions) throws {
        let policy = run.projection.snapshots
        guard options.useSnapshots, policy.every > 0 || options.snapshotNow else { return }
        let chain = try Snapshots.chain(db, projection: run.projection, create: true)!
        // Snapshots past the table's position were taken between checkpoints by a replay
        // that did not finish: this one takes them again, on what it has seen.
        try Snapshots.delete(db, chain: chain, fromSeq: run.position + 1)
        let taken = try Int64.fetchAll(db, sql: "SELECT seq FROM snapshots WHERE chain = ? ORDER BY seq", arguments: [chain])
        let head = try ChainHead.seq(db)
        let end = min(options.toSeq ?? head, head)
        // Counting the table scans it: only when this replay may take a snapshot.
        let expectsSnapshot = policy.every > 0 && end - (taken.last ?? 0) >= policy.every
        let keys = expectsSnapshot ? try Int64.fetchOne(db, sql: "SELECT count(*) FROM \(run.target.quotedTable)") ?? 0 : nil
        run.snapshots = SnapshotSchedule(
            chain: chain, policy: policy, taken: taken, position: run.position, head: end,
            keys: keys, force: options.snapshotNow)
    }

    /// Fills a new build table from the newest trustworthy snapshot of the projection's
    /// code, when there is one: the build then starts at its seq instead of 1, with the
    /// keys parked there and their dead letters up to it (a parking projection).
    private func startFromSnapshot(
        _ db: Database, projection: Projection, target: ReadModelTarget, limits: LuaLimitOverrides?
    ) throws -> (Int64, FoldedTimes)? {
        let head = try ChainHead.seq(db)
        guard let snapshot = try Snapshots.newestUsable(
            db, projection: projection, asOf: nil, knownAt: nil, maxSeq: head, limits: limits, warn: { logger.warning("\($0)") })
        else { return nil }
        try SnapshotStates.restore(db, snapshot, into: target, schema: "main")
        try SnapshotParked.restore(db, snapshot, into: target.table, schema: "main")
        let times = FoldedTimes(maxOccurredAt: snapshot.record.maxOccurredAt, maxRecordedAt: snapshot.record.maxRecordedAt)
        // The build's table is at the snapshot's seq: a restart (a key parked before its
        // first checkpoint) or an interrupted build resumes there, not at 0.
        try ReadModel.savePosition(db, target: target, position: snapshot.seq, times: times)
        return (snapshot.seq, times)
    }

    /// Folds a batch with every partition of every run as its own task, concurrently:
    /// each task sees the rows of its partition in seq order, and each VM is used by
    /// one task only.
    private func foldInParallel(_ batch: EventBatch, _ runs: [ProjectionRun], states: some StateDatabase) throws {
        for run in runs { try run.resetPartials() }
        batch.withEvents { events in
            batch.streamHashes.withUnsafeBufferPointer { hashes in
                let fold = ParallelFold(
                    tasks: runs.flatMap { run in run.partitions.indices.map { (run, $0) } }, batch: batch, events: events,
                    hashes: hashes.baseAddress!, states: states)
                DispatchQueue.concurrentPerform(iterations: fold.tasks.count) { fold.run(task: $0) }
            }
        }
        for run in runs { run.mergePartials(states: states) }
    }

    /// Saves the failure of every run that failed and has not been recorded yet (after
    /// the checkpoint in flight, which would mark the projection ok again).
    private func recordFailures(_ runs: [ProjectionRun], writer: CheckpointWriter<some StateDatabase>) throws {
        let failed = runs.filter { $0.failure != nil && !$0.failureRecorded }
        guard !failed.isEmpty else { return }
        try writer.writeNow { db in
            for run in failed {
                try ReadModel.markFailed(db, target: run.target, error: run.failure!.description)
            }
        }
        for run in failed { run.failureRecorded = true }
    }

}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Where a replay pass keeps its projections' states: the store's own tables, or a
/// temporary database answering a temporal query.
protocol StateDatabase: SendableMetatype {
    /// Runs `body` in a read transaction that sees every committed checkpoint.
    func readStates<T>(_ body: (Database) throws -> T) throws -> T
    /// Runs `body` in one write transaction.
    func writeStates(_ body: (Database) throws -> Void) throws
    /// Whether `readStates` calls from several threads run at once (each on its own
    /// connection) rather than one after another.
    var concurrentReads: Bool { get }
}

extension EventStore: StateDatabase {
    func readStates<T>(_ body: (Database) throws -> T) throws -> T { try readTransaction(body) }
    func writeStates(_ body: (Database) throws -> Void) throws { try writeTransaction(body) }
    var concurrentReads: Bool { pool is DatabasePool }  // a pool of WAL readers
}

/// One batch's folding, shared by the concurrent tasks of `foldInParallel`.
///
/// `@unchecked Sendable` because the compiler cannot see the discipline that makes it
/// safe: each task index owns one (run, partition) pair and mutates only that
/// partition and its VM; the runs, the batch and the positions are only read while the
/// tasks run; and `concurrentPerform` returns only after every task has finished,
/// before anything else touches them.
private final class ParallelFold<States: StateDatabase>: @unchecked Sendable {
    let tasks: [(ProjectionRun, Int)]
    let batch: EventBatch
    /// The batch's rows and their stream hashes, valid while the tasks run.
    let events: UnsafeBufferPointer<avm_event>
    let hashes: UnsafePointer<UInt64>
    let states: States

    init(tasks: [(ProjectionRun, Int)], batch: EventBatch, events: UnsafeBufferPointer<avm_event>, hashes: UnsafePointer<UInt64>, states: States) {
        self.tasks = tasks
        self.batch = batch
        self.events = events
        self.hashes = hashes
        self.states = states
    }

    func run(task index: Int) {
        let (run, p) = tasks[index]
        let partition = run.partitions[p]
        guard partition.failure == nil, partition.parkRequests.isEmpty else { return }
        let count = run.partitions.count
        let from = batch.firstRow(after: run.position)
        func fold(_ lookup: (String) throws -> String?) {
            let name = run.projection.name
            if run.mergesRanges {
                // Ranges: contiguous rows of the batch, in order, for a merging projection.
                let rangeSize = (batch.count + count - 1) / count
                let end = min(batch.count, (p + 1) * rangeSize)
                let start = max(from, p * rangeSize)
                guard start < end else { return }
                partition.apply(UnsafeBufferPointer(rebasing: events[..<end]), from: start, split: nil, projection: name, lookup: lookup)
            } else {
                let split = count > 1 ? (hashes: hashes, parts: count, part: p) : nil
                partition.apply(events, from: from, split: split, projection: name, lookup: lookup)
            }
        }
        guard states.concurrentReads else {
            // One connection shared by the tasks: a read per lookup, so that they take turns.
            fold { key in
                if let found = run.storedStateInMemory(key) { return found }
                return try states.readStates { db in try run.storedState(key, db) }
            }
            return
        }
        // One read transaction for the batch, as the sequential fold has: it sees every
        // checkpoint (they are committed between batches). A transaction per lookup cost
        // more than the lookup once states are evicted (measured).
        do {
            try states.readStates { db in fold { key in try run.storedState(key, db) } }
        } catch {
            partition.failure = ProjectionError(
                projection: run.projection.name, message: "cannot read stored states: \(error) (after seq \(run.position))")
        }
    }
}
