import CLuaSandbox
import Foundation
import GRDB
import GRDBSQLite

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
        let lock = try ReplayLock(databasePath: path)
        defer { withExtendedLifetime(lock) {} }
        var outcomes: [String: ReplayOutcome] = [:]
        var runs: [ProjectionRun] = []
        var wasBuild: Set<String> = []
        try writeTransaction { db in
            for projection in projections {
                let live = try ReadModel.record(db, name: projection.name, build: false)
                if !options.rebuild, let live, live.codeHash == projection.codeHash, live.version == projection.version {
                    let target = ReadModelTarget(projection: projection.name, isBuild: false, columns: projection.columns)
                    runs.append(try ProjectionRun(
                        projection: projection, target: target, position: live.position, limits: options.limits,
                        parallel: options.parallel))
                    continue
                }
                let target = ReadModelTarget(projection: projection.name, isBuild: true, columns: projection.columns)
                let build = try ReadModel.record(db, name: projection.name, build: true)
                var position: Int64 = 0
                if !options.rebuild, let build, build.codeHash == projection.codeHash, build.version == projection.version,
                   try db.tableExists(target.table) {
                    position = build.position  // resume an interrupted build
                } else {
                    try ReadModel.startBuild(db, projection: projection, target: target)
                }
                wasBuild.insert(projection.name)
                runs.append(try ProjectionRun(
                    projection: projection, target: target, position: position, limits: options.limits,
                    parallel: options.parallel))
            }
        }

        // Passes until every build has caught up with the head (appends may arrive
        // while it builds), at most a few.
        for _ in 0..<4 {
            let head = try self.head().seq
            let end = min(options.toSeq ?? head, head)
            try pass(runs.filter { $0.isActive && $0.position < end }, end: end, options: options)
            let promotable = runs.filter { $0.isActive && $0.target.isBuild && $0.position >= head }
            if !promotable.isEmpty {
                try writeTransaction { db in
                    for run in promotable {
                        try ReadModel.promote(db, projection: run.projection, position: run.position)
                    }
                }
                for run in promotable {
                    outcomes[run.projection.name] = ReplayOutcome(
                        projection: run.projection.name, status: .rebuilt, position: run.position, eventsApplied: run.eventsApplied)
                }
                runs.removeAll { run in promotable.contains { $0 === run } }
            }
            if options.toSeq != nil || !runs.contains(where: { $0.isActive && $0.target.isBuild }) { break }
        }

        for run in runs {
            let status: ReplayOutcome.Status
            if let failure = run.failure {
                status = .failed(failure)
            } else if run.target.isBuild {
                status = .building
            } else {
                status = run.position == run.startPosition ? .upToDate : .updated
            }
            outcomes[run.projection.name] = ReplayOutcome(
                projection: run.projection.name, status: status, position: run.position, eventsApplied: run.eventsApplied)
        }
        return projections.compactMap { outcomes[$0.name] }
    }

    /// One pass over seq (min position, end]: every run sees each event after its own
    /// position, in seq order. A second thread reads the events ahead.
    private func pass(_ runs: [ProjectionRun], end: Int64, options: ReplayOptions) throws {
        guard let from = runs.map(\.position).min(), from < end else { return }
        let types = Set(runs.flatMap(\.projection.handledTypes)).sorted()
        let clock = ContinuousClock.now
        var eventsRead = 0
        var sinceCheckpoint = 0
        var lastCheckpoint = ContinuousClock.now
        let reader = EventBatchReader(pool: pool, from: from, end: end, types: types, batchSize: options.batchSize)
        defer { reader.cancel() }
        while let batch = reader.next() {
            if let error = batch.error { throw StoreError.storage(error) }
            var active = runs.filter(\.isActive)
            if active.isEmpty { return }
            if batch.count > 0 {
                if active.contains(where: { $0.partitions.count > 1 }) {
                    try foldInParallel(batch, active)
                } else {
                    // A snapshot for reloading evicted states: it sees every committed checkpoint.
                    try readTransaction { db in
                        batch.forEach { _, event in
                            for run in active where run.position < event.seq {
                                run.partitions[0].apply(&event, projection: run.projection.name) { try run.storedState($0, db) }
                            }
                            if active.contains(where: { !$0.isActive }) { active = active.filter(\.isActive) }
                        }
                    }
                }
            }
            for run in active where run.isActive { run.position = max(run.position, batch.through) }
            try recordFailures(runs)
            eventsRead += batch.count
            sinceCheckpoint += batch.count
            let due = batch.through >= end
                || sinceCheckpoint >= (options.checkpointEvery ?? Int.max)
                || (ContinuousClock.now - lastCheckpoint).seconds >= options.checkpointSeconds
                || runs.contains { $0.isActive && $0.needsMemory }
            if due {
                // Serialise states outside the write lock (partitions concurrently),
                // then write them all with the positions in one transaction.
                for run in runs where run.isActive { run.serializeStates() }
                let writers = runs.filter(\.isActive)
                try writeTransaction { db in
                    for run in writers { try run.checkpoint(db) }
                }
                for run in writers where run.isActive {
                    run.checkpointCommitted()
                    try run.trimMemory()
                }
                try recordFailures(runs)
                sinceCheckpoint = 0
                lastCheckpoint = ContinuousClock.now
            }
            options.progress?(ReplayProgress(
                position: batch.through, start: from, end: end, eventsRead: eventsRead,
                seconds: (ContinuousClock.now - clock).seconds))
        }
    }

    /// Folds a batch with every partition of every run as its own task, concurrently:
    /// each task sees the rows of its partition in seq order, and each VM is used by
    /// one task only.
    private func foldInParallel(_ batch: EventBatch, _ runs: [ProjectionRun]) throws {
        for run in runs { try run.resetPartials() }
        let fold = ParallelFold(tasks: runs.flatMap { run in run.partitions.indices.map { (run, $0) } }, batch: batch, store: self)
        DispatchQueue.concurrentPerform(iterations: fold.tasks.count) { fold.run(task: $0) }
        for run in runs { run.mergePartials(store: self) }
    }

    /// Saves the failure of every run that failed and has not been recorded yet.
    private func recordFailures(_ runs: [ProjectionRun]) throws {
        let failed = runs.filter { $0.failure != nil && !$0.failureRecorded }
        guard !failed.isEmpty else { return }
        try writeTransaction { db in
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

/// One batch's folding, shared by the concurrent tasks of `foldInParallel`.
///
/// `@unchecked Sendable` because the compiler cannot see the discipline that makes it
/// safe: each task index owns one (run, partition) pair and mutates only that
/// partition and its VM; the runs, the batch and the positions are only read while the
/// tasks run; and `concurrentPerform` returns only after every task has finished,
/// before anything else touches them.
private final class ParallelFold: @unchecked Sendable {
    let tasks: [(ProjectionRun, Int)]
    let batch: EventBatch
    let store: EventStore

    init(tasks: [(ProjectionRun, Int)], batch: EventBatch, store: EventStore) {
        self.tasks = tasks
        self.batch = batch
        self.store = store
    }

    func run(task index: Int) {
        let (run, p) = tasks[index]
        let partition = run.partitions[p]
        let count = UInt64(run.partitions.count)
        // Ranges: contiguous rows of the batch, in order, for a merging projection.
        let rangeSize = (batch.count + Int(count) - 1) / Int(count)
        let lookup = { [store] (key: String) throws -> String? in
            // A fresh snapshot: it sees every committed checkpoint.
            try store.readTransaction { db in try run.storedState(key, db) }
        }
        batch.forEach { row, event in
            guard partition.failure == nil, run.position < event.seq else { return }
            if run.mergesRanges {
                guard row / rangeSize == p else { return }
            } else if count > 1, batch.streamHashes[row] % count != UInt64(p) {
                return
            }
            partition.apply(&event, projection: run.projection.name, lookup: lookup)
        }
    }
}
