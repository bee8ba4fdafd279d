import CLuaSandbox
import Foundation
import GRDB

/// One VM folding the keys of one partition of a projection. Used by one thread at a
/// time: the replay hands each partition to exactly one task per batch.
final class Partition {
    let vm: LuaVM
    var eventsApplied = 0
    var failure: ProjectionError?
    /// States read back from the run's cache or its table (they had been evicted, or
    /// were never in this VM), and the time that took.
    var statesReadBack = 0
    var readingBack = Duration.zero
    /// Whether a deterministic failure parks its key instead of failing (`on_error =
    /// "park"`, in a fold that can restart from its checkpoint: `ProjectionRun.honourParked`).
    var parks = false
    /// Keys whose handler failed deterministically, to park (the partition stops there).
    var parkRequests: [ParkRequest] = []
    /// Whether a deterministic failure parks its key where it is, the fold going on (a
    /// fold that cannot restart from a stored checkpoint: `EventStore.refoldParkedInPlace`
    /// then gives the key its last good state).
    var parksInPlace = false
    /// Keys parked in place since the fold last gave them their last good states.
    var parkedInPlace: [ParkRequest] = []

    init(vm: LuaVM) {
        self.vm = vm
    }

    /// Folds one event; on failure records it. `lookup` returns a key's stored state.
    func apply(_ event: inout avm_event, projection: String, lookup: (String) throws -> String?) {
        do {
            switch try vm.apply(&event) {
            case .applied:
                eventsApplied += 1
            case .skipped: break
            case .needsState(let key):
                try readBack(key, lookup)
                if case .applied = try vm.apply(&event) { eventsApplied += 1 }
            }
        } catch {
            _ = fail(event, projection: projection, error: error)
        }
    }

    /// Folds `events` from index `from` on, in order: all of them, or with `split`, those
    /// whose stream hash falls in this partition. Stops at a failure, recording it.
    func apply(
        _ events: UnsafeBufferPointer<avm_event>, from: Int, split: (hashes: UnsafePointer<UInt64>, parts: Int, part: Int)?,
        projection: String, lookup: (String) throws -> String?
    ) {
        var batch = avm_batch()
        batch.events = events.baseAddress
        batch.count = events.count
        batch.at = from
        if let split {
            batch.hashes = split.hashes
            batch.parts = UInt64(split.parts)
            batch.part = UInt64(split.part)
        }
        while batch.at < batch.count {
            do {
                defer {
                    eventsApplied += batch.applied
                    batch.applied = 0
                }
                guard case .needsState(let key) = try vm.apply(batch: &batch) else { return }
                // Its stored state, then the event alone; the batch goes on after it.
                try readBack(key, lookup)
                var event = events[batch.at]
                if case .applied = try vm.apply(&event) { batch.applied += 1 }  // counted with the batch's, after them
                batch.at += 1
            } catch {
                guard fail(events[batch.at], projection: projection, error: error) else { return }
                batch.at += 1  // parked in place: the batch goes on after it
            }
        }
    }

    /// Gives the VM `key`'s stored state (or none), counting the time it takes.
    private func readBack(_ key: String, _ lookup: (String) throws -> String?) throws {
        let start = ContinuousClock.now
        try vm.provideState(key: key, json: lookup(key))
        readingBack += ContinuousClock.now - start
        statesReadBack += 1
    }

    /// Records a failure, or parks its key.
    /// - Returns: whether the fold goes on (the key was parked in place).
    private func fail(_ event: avm_event, projection: String, error: Error) -> Bool {
        let type = String(decoding: UnsafeRawBufferPointer(start: event.type, count: event.type_len), as: UTF8.self)
        let stream = String(cString: event.stream)
        let id = String(decoding: UnsafeRawBufferPointer(start: event.id, count: event.id_len), as: UTF8.self)
        // The event's data is what the handler was given: show it (shortened), so
        // the value that broke it can be seen without looking the event up.
        var data = String(decoding: UnsafeRawBufferPointer(start: event.data, count: event.data_len), as: UTF8.self)
        if data.count > 300 { data = String(data.prefix(300)) + "…" }
        let message = "\(eventDescription(type: type, id: id, stream: stream)): \(error); the event's data: \(data)"
        // Only a failure the same events always give parks; CPU time and memory stop.
        if parks || parksInPlace, (error as? LuaError)?.deterministic == true, let key = vm.failedKey {
            let request = ParkRequest(key: key, seq: event.seq, error: message)
            guard parksInPlace else {
                parkRequests.append(request)
                return false
            }
            do {
                // Its events from here on are skipped, and what the handler did to its
                // state is dropped: the stored state stays until the fold refolds it.
                try vm.park(key: key, firstSeq: event.seq)
                try vm.setState(key: key, json: nil)
                parkedInPlace.append(request)
                return true
            } catch {
                failure = ProjectionError(projection: projection, seq: event.seq, message: "cannot park key \(key): \(error)", deterministic: false)
                return false
            }
        }
        failure = ProjectionError(
            projection: projection, seq: event.seq,
            message: message,
            deterministic: (error as? LuaError)?.deterministic ?? true)
        return false
    }
}

/// How a failure names the event whose handler caused it.
func eventDescription(type: String, id: String, stream: String) -> String {
    "handler \"\(type)\" (event \(id), stream \"\(stream)\")"
}

/// One projection being replayed: its partitions' VMs, where it writes, how far it is.
///
/// A projection keyed by stream can be split into partitions by a stable hash of the
/// stream, so that every key's events go to one VM, in seq order: the states are the
/// same whatever the number of partitions. Other projections use one partition.
final class ProjectionRun {
    let projection: Projection
    let target: ReadModelTarget
    let partitions: [Partition]
    var position: Int64
    let startPosition: Int64
    /// The position the table holds, as of the last checkpoint planned that writes it.
    private(set) var storedPosition: Int64
    var failureRecorded = false
    /// A failure found at a checkpoint (a state JSON cannot store).
    private var checkpointFailure: ProjectionError?
    /// The position at the last flush of its states (changed states were written out).
    private var flushedAt: Int64
    /// The largest times of the events folded up to `position`.
    var times: FoldedTimes
    /// When this run takes snapshots; nil: it takes none.
    var snapshots: SnapshotSchedule?
    /// For a temporal question: the states the run starts from without copying them
    /// into its table (a snapshot in the attached store, or those states in memory); a
    /// key not in the run's table has its state there.
    var base = StateOverlay.Base.none
    /// Set by a question's fold: its checkpoints keep the states they write here, in
    /// memory, instead of writing its table (`ChangedStates`).
    var changes: ChangedStates?
    /// Reads one key's state from the table (see `storedState`).
    private let lookupSQL: String

    /// The first failure, by seq, of any partition.
    var failure: ProjectionError? {
        checkpointFailure ?? partitions.compactMap(\.failure).min { ($0.seq ?? 0) < ($1.seq ?? 0) }
    }
    var isActive: Bool { failure == nil && !needsRestart }

    /// The keys its partitions found failing, to park before the run starts again from
    /// its checkpoint (`EventStore.replay`): the restarted run skips their events from
    /// the failed seq on, so each parked key holds the state its last good event left.
    var parkRequests: [ParkRequest] { partitions.flatMap(\.parkRequests) }
    var needsRestart: Bool { partitions.contains { !$0.parkRequests.isEmpty } }

    /// Makes a deterministic failure park its key (`on_error = "park"`), and skips the
    /// events of the keys in `parked` (key -> first seq not folded) as dead letters.
    /// - Parameter restarts: whether the fold restarts from its checkpoint after parking a
    ///   key (a replay, which stores the parked set); without, the key is parked in place,
    ///   in this fold only, and the fold goes on (a temporal question, a scratch
    ///   catch-up, `verify --projections`: `EventStore.refoldParkedInPlace`).
    func honourParked(_ parked: [String: Int64], restarts: Bool) throws {
        guard projection.onError == .park else { return }
        for partition in partitions {
            partition.parks = restarts
            partition.parksInPlace = !restarts
            for (key, seq) in parked { try partition.vm.park(key: key, firstSeq: seq) }
        }
    }

    /// Where the states at `startPosition` are, for refolding a key parked in place (nil:
    /// `base`): the live table a scratch catch-up copied, the snapshot `verify
    /// --projections` restored.
    var origin: StateOverlay.Base?
    /// The keys this fold parked in place so far, by key (`EventStore.refoldParkedInPlace`).
    var parkedHere: [String: ParkRequest] = [:]
    /// Whether a key parked in place is said on stderr (not for the refold of one).
    var reportsParks = true
    /// Keys whose rows were rewritten in the table behind the cache's back (parked in
    /// place): read from the table, which a fold that parks in place writes at once.
    var rewritten: Set<String> = []

    /// Unparks the keys of `keys` this fold parked in place, which it is about to fold
    /// again from `startPosition` (a point fold's late events).
    func unparkInPlace(_ keys: [String]) {
        for key in keys where parkedHere.removeValue(forKey: key) != nil {
            for partition in partitions { partition.vm.unpark(key: key) }
        }
    }

    /// A retry of one parked key (`EventStore.retryParked`): its checkpoint replaces the
    /// key's parked row and dead letters.
    struct Retry {
        var key: String
        /// Where it failed again (it stays parked from there); nil: it is parked no more.
        var parkedAgain: ParkRequest?
        /// Where it was parked before the retry.
        var firstSeq: Int64
        /// The snapshot chain of the table's code, if any: its snapshots from `firstSeq` on
        /// hold the key parked there, which the table no longer has when the retry folded
        /// it further, and are deleted (a later one compares the table with the one before).
        var snapshotChain: Int64?
    }
    var retrying: Retry?

    /// Dead letters folded past since the last checkpoint that wrote the table.
    private var pendingDeadLetters: [(key: String, seq: Int64)] = []
    /// A global projection with `merge`: each partition folds a contiguous range of each
    /// batch, and the partial states are merged in seq order into partition 0's.
    let mergesRanges: Bool
    /// The partitions whose states are written at checkpoints.
    var statePartitions: ArraySlice<Partition> { mergesRanges ? partitions.prefix(1) : partitions[...] }
    var eventsApplied: Int { partitions.reduce(0) { $0 + $1.eventsApplied } }

    init(
        projection: Projection, target: ReadModelTarget, position: Int64, times: FoldedTimes = FoldedTimes(),
        limits: LuaLimitOverrides?, parallel: Int, cacheBudget: Int? = nil
    ) throws {
        self.projection = projection
        self.cacheBudget = cacheBudget
        self.target = target
        self.position = position
        self.times = times
        startPosition = position
        storedPosition = position
        lookupSQL = "SELECT state FROM main.\(target.quotedTable) WHERE key = ?"
        flushedAt = position
        mergesRanges = projection.key == .global && projection.hasMerge && parallel > 1
        let count = projection.key == .stream || mergesRanges ? max(1, parallel) : 1
        partitions = try (0..<count).map { _ in
            let vm = try projection.makeVM(limits: limits)
            // An empty table has no stored states: start every key from init without asking.
            vm.assumeNoStoredStates(position == 0)  // a run with a base starts past 0
            return Partition(vm: vm)
        }
    }

    /// Before a batch: the partitions after the first start their range from init.
    func resetPartials() throws {
        guard mergesRanges else { return }
        for partition in partitions.dropFirst() {
            try partition.vm.evict()
            partition.vm.assumeNoStoredStates(true)
        }
    }

    /// After a batch: state = merge(merge(state, partial 1), partial 2) … in seq order.
    func mergePartials(states: some StateDatabase) {
        guard mergesRanges, isActive else { return }
        let first = partitions[0]
        do {
            if try first.vm.stateJSON(key: "global") == nil {
                // Not in memory (resumed, or evicted): continue from the stored state.
                let stored = try states.readStates { db in try storedState("global", db) }
                try first.vm.provideState(key: "global", json: stored)
            }
            for partition in partitions.dropFirst() {
                guard let partial = try partition.vm.stateJSON(key: "global") else { continue }
                try first.vm.merge(key: "global", partial: partial)
            }
        } catch {
            checkpointFailure = ProjectionError(projection: projection.name, message: "merge failed: \(error) (after seq \(position))")
        }
    }

    /// Reads a key's stored state with `db`: from the cache of states written since the
    /// VMs first let go of theirs, else from the table (for a question's fold, its
    /// `changes`), else from the base.
    ///
    /// Runs once per key whose state is not in memory (after an eviction, every key):
    /// the statement's SQL is made once and it is stepped without GRDB's row machinery,
    /// which cost more than SQLite's lookup itself (measured).
    func storedState(_ key: String, _ db: Database) throws -> String? {
        if let cache, !rewritten.contains(key), let state = cache.state(forKey: key) { return state }
        if let changes { return try (cache == nil ? nil : changes.state(of: key)) ?? base.state(of: key, db) }
        let statement = try SQLStatement(db, lookupSQL, cached: true)
        defer { statement.reset() }
        statement.bind(1, text: key)
        if try statement.step("cannot read the stored state of \(projection.name)") { return statement.string(0) }
        return try base.state(of: key, db)
    }

    /// `storedState(key, db)` when it needs no database (`.some(nil)`: no state), else
    /// nil: for a question's fold (its checkpoints keep their states in `changes`) from a
    /// base in memory, or none. Such a fold runs over a `TemporaryStates`, one connection
    /// that the partitions take turns on: without it they look keys up at the same time
    /// (taking turns cost 11 µs a key, a third of a question as of a day two snapshots
    /// apart: measured).
    func storedStateInMemory(_ key: String) -> String?? {
        guard let changes, base.isInMemory else { return nil }
        // Until a VM first lets go of its states (and `cache` is made), the VMs hold every
        // state the fold changed: a key they ask for is the base's. (Looked up in
        // `changes`, each point of a series indexed all its states anew: a sixth of it.)
        guard cache != nil else { return base.stateInMemory(of: key) }
        let cached = rewritten.contains(key) ? nil : cache?.state(forKey: key)
        return .some(cached ?? changes.state(of: key) ?? base.stateInMemory(of: key)!)
    }

    /// Serialises the states changed since the last checkpoint in every partition: the
    /// part of a checkpoint that needs no database, so partitions do it concurrently. A
    /// state that cannot be stored (a function, NaN, a cycle) fails this projection here,
    /// before anything of it is written, naming the last event that changed it (the VM
    /// keeps each key's last seq): `describe(seq)` names that event's handler, id and stream.
    func serializeStates(describe: (Int64) -> String?) {
        let flushing = Array(statePartitions)
        let results = UnsafeMutableBufferPointer<Result<LuaVM.FlushedStates, LuaError>?>.allocate(capacity: flushing.count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let slots = FlushSlots(partitions: flushing, results: results)
        if flushing.count == 1 {
            slots.flush(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: flushing.count) { slots.flush($0) }
        }
        flushed = []
        if projection.onError == .park {
            for partition in flushing { pendingDeadLetters += partition.vm.takeDeadLetters() }
        }
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let states)?: flushed.append(states)
            case .failure(let error)?:
                if !mergesRanges, let seq = flushing[index].vm.flushFailedSeq {
                    let event = describe(seq).map { ": " + $0 } ?? ""
                    checkpointFailure = ProjectionError(
                        projection: projection.name, seq: seq,
                        message: "\(error.message), as the last event that changed that state left it\(event)")
                } else {
                    // Merged from partial states folded in parallel: the event is not known.
                    checkpointFailure = ProjectionError(
                        projection: projection.name,
                        message: "\(error.message) (changed by an event from seq \(flushedAt + 1) to \(position), or by merge; "
                            + "with `audit replay --parallel 1` the error names the event)")
                }
            case nil: break
            }
        }
        guard checkpointFailure == nil else { return }
        flushedAt = position
    }

    private var flushed: [LuaVM.FlushedStates] = []
    /// States serialised at snapshots taken between checkpoints: in the snapshots
    /// already, in the table at the next checkpoint.
    private let backlog = TableBacklog()

    /// Decides what the checkpoint writes of the serialised states: the table with the
    /// position (a checkpoint), and a snapshot when one is due. With `full` false (only a
    /// snapshot is due), the table is left for the next checkpoint when the snapshot
    /// knows what changed: the snapshot then costs only its own rows. (Writing the table
    /// at every snapshot instead, while the fold goes on, cost 40% more CPU and made a
    /// sequential replay slower: each snapshot rewrote most of the table's pages.) Call after
    /// `serializeStates`, only when the run is active, and only once the previous
    /// checkpoint has committed (its write may have changed `backlog`).
    func planCheckpoint(full: Bool) -> CheckpointWrite {
        let runs = flushed.map(StateRun.init)
        flushed = []
        if let changed = snapshots?.changed {
            // Kept until the next snapshot; past a bound the snapshot compares the table
            // with the last one instead.
            let kept = changed + runs
            snapshots!.changed = kept.reduce(0) { $0 + $1.byteCount } <= 256 << 20 ? kept : nil
        }
        let snapshotDue = snapshots?.isDue(at: position) ?? false
        // Memory held for the table stays bounded whatever the checkpoint cadence.
        let holding = runs.reduce(backlog.byteCount) { $0 + $1.byteCount }
        let writesTable = full || !snapshotDue || snapshots?.changed == nil || snapshots?.keysAtStart == nil
            || holding > 128 << 20
        var write = CheckpointWrite(projection: projection.name, target: target, position: position, times: times)
        write.changes = changes
        write.backlog = backlog
        tableWrite = nil
        // Dead letters the snapshot (if one is due) needs and the table does not hold yet.
        let unwritten = writesTable ? [] : pendingDeadLetters
        if writesTable {
            storedPosition = position
            write.deadLetters = pendingDeadLetters.sorted { $0.seq < $1.seq }
            write.retry = retrying
            pendingDeadLetters = []
            if cache != nil || needsMemory {
                // The cache keeps a write's states as one run: when it is in use, or
                // starts now (a VM is full), that run is merged here, with the backlog,
                // and the writer upserts it instead of merging the same runs again.
                let merged = [StateRun.merged(backlog.take() + runs)]
                write.states = merged
                tableWrite = merged
                cache?.add(merged)
            } else {
                write.states = runs
                tableWrite = backlog.pending + runs
            }
        } else {
            write.backlogged = runs
        }
        if snapshotDue, var schedule = snapshots {
            // The table's keys at this position, written or not, without counting them:
            // states are never removed, so they are the table's at the start plus the
            // keys new since.
            let keys = schedule.keysAtStart.map { $0 + Int64(statePartitions.reduce(0) { $0 + $1.vm.keysCreated }) }
            write.snapshot = CheckpointWrite.Snapshot(
                chain: schedule.chain, keep: schedule.policy.keep, changed: schedule.changed, keys: keys,
                parking: projection.onError == .park ? unwritten : nil)
            schedule.taken(at: position)
            snapshots = schedule
        }
        return write
    }

    /// Whether the next checkpoint is due for a snapshot.
    var wantsSnapshot: Bool { snapshots?.isDue(at: position) ?? false }

    /// Whether a VM holds more than half its memory limit: time to checkpoint and let
    /// go of its states.
    var needsMemory: Bool { partitions.contains { $0.vm.memoryUsed > $0.vm.memoryLimit / 2 } }

    /// Right after `planCheckpoint`, without waiting for its write to commit: lets go of
    /// the states in VMs past half their memory limit, so memory stays bounded however
    /// many keys there are. From the first time on, the states written to the table are
    /// cached (`StateCache`, up to half the VMs' limits), and read back from there first:
    /// the table does not show the checkpoint in flight yet. (Waiting for it to commit
    /// instead was a sixth of a replay that evicts, measured.)
    /// - Returns: whether a VM let go of its states.
    @discardableResult
    func trimMemory() throws -> Bool {
        // A write that leaves the table for later: the VMs hold states the table lacks.
        guard let tableWrite else { return false }
        var evicted = false
        for partition in partitions where partition.vm.memoryUsed > partition.vm.memoryLimit / 2 {
            try partition.vm.evict()
            evicted = true
        }
        if evicted, cache == nil {
            let cache = StateCache(budget: cacheBudget ?? partitions.reduce(0) { $0 + $1.vm.memoryLimit / 2 })
            cache.add(tableWrite)
            self.cache = cache
        }
        return evicted
    }

    /// The states the last planned checkpoint writes to the table, oldest runs first
    /// (with those of the backlog it drains); nil when it does not write the table.
    private var tableWrite: [StateRun]?
    /// The states written to the table since a VM first let go of its states.
    private(set) var cache: StateCache?
    /// Tests: the cache's budget instead of half the VMs' limits.
    private let cacheBudget: Int?

    /// Whether the user has been told that this projection's states outgrew its memory.
    var warnedOfEviction = false

    /// Events of its types after its position that a pass read as of a time they
    /// occurred after (`EventSelection.reportsSkipped`), oldest first: a series folds
    /// them at the first later point that selects them (`PointFold`).
    var skipped: [SkippedEvent] = []

    func noteSkipped(_ events: [SkippedEvent]) {
        skipped += events.filter { $0.seq > position && projection.handles($0.type, stream: $0.stream) }
    }
}

/// The partitions' flushes of one checkpoint, run concurrently.
///
/// `@unchecked Sendable`: task i touches only partition i's VM and result slot i, and
/// `concurrentPerform` returns only after every task has finished.
private final class FlushSlots: @unchecked Sendable {
    let partitions: [Partition]
    let results: UnsafeMutableBufferPointer<Result<LuaVM.FlushedStates, LuaError>?>

    init(partitions: [Partition], results: UnsafeMutableBufferPointer<Result<LuaVM.FlushedStates, LuaError>?>) {
        self.partitions = partitions
        self.results = results
    }

    func flush(_ index: Int) {
        do {
            results[index] = .success(try partitions[index].vm.flush())
        } catch let error as LuaError {
            results[index] = .failure(error)
        } catch {
            results[index] = .failure(LuaError(message: "\(error)"))
        }
    }
}
