import Foundation
import GRDB

/// Folds projections forward through points in time, in one pass over the log, over a
/// temporary database, and gives each projection's states at the current point as an
/// overlay (`StateOverlay`): the snapshot the fold started from plus the states it
/// changed since, which its checkpoints keep in memory (`ChangedStates`; the tables
/// `audit_folded_NAME` and `audit_point_NAME` it makes stay empty).
///
/// The points must not go back in either time (a series: ascending as-of, known-at
/// fixed or ascending too), so that each selects every event the one before it did.
/// Each projection starts from its newest snapshot usable for the first point, which is
/// usable for every later one. At each point the fold goes on from where it was to the
/// point's last selected seq, applying the events the point selects, in seq order,
/// through the replay's own pass (`EventStore.pass`: the same VMs, limits, parallel
/// partitions and failure handling as a replay; where a replay would park a key, so
/// would this).
///
/// **Late events.** Seq order is not business-time order: the pass reaches an event that
/// occurred after the current point (so it is not applied) before events of earlier
/// points that were recorded after it. Such an event is passed over and remembered; at
/// the first point that selects it, the key's state lacks an event in the middle of its
/// history, so the key is folded again: its state is reset to the snapshot's (or to
/// `init`) and its events after the snapshot that the point selects are applied again,
/// in seq order. For a projection keyed by stream, that is the event's stream. A
/// projection keyed by a function or `global` cannot tell which keys an event touches
/// without folding it: from the first point that selects such an event on, it is folded
/// from its newest usable snapshot at each point instead (as separate questions would).
///
/// - Complexity: one pass over the events up to the last point; plus, per late event,
///   its stream's events after the snapshot (or, for the other projections, a fold per
///   point from then on).
final class PointFold {
    /// One projection being folded.
    final class Member {
        let projection: Projection
        /// The one pass's run.
        let run: ProjectionRun
        let base: StateOverlay.Base
        /// Set once the one pass cannot place a late event (see the type's doc): the
        /// projection is folded alone at each point (into `pointChanges`).
        fileprivate(set) var foldsPerPoint = false
        fileprivate var pointBase = StateOverlay.Base.none
        /// Key -> first seq not folded, of the keys parked at the snapshot the fold
        /// started from (the one pass's, or the current point's when folded alone).
        fileprivate var snapshotParked: [String: Int64] = [:]
        fileprivate var pointRun: ProjectionRun?
        fileprivate var pointChanges = ChangedStates()

        init(projection: Projection, run: ProjectionRun, base: StateOverlay.Base) {
            self.projection = projection
            self.run = run
            self.base = base
        }

        /// Key -> first seq not folded, of the keys parked in the answer at the current
        /// point: at the snapshot it started from, and by its own fold
        /// (`ProjectionRun.parkedHere`). Their states are their last good ones.
        var parked: [String: Int64] {
            let run = foldsPerPoint ? pointRun! : self.run
            return snapshotParked.merging(run.parkedHere.mapValues(\.seq)) { a, _ in a }
        }

        /// Its states at the current point.
        var overlay: StateOverlay {
            let base = foldsPerPoint ? pointBase : self.base
            let run = foldsPerPoint ? pointChanges.run : self.run.changes!.run
            return StateOverlay(projection: projection.name, columns: projection.columns, base: base, changes: run.map { .states($0) } ?? .none)
        }
    }

    let store: EventStore
    let states: TemporaryStates
    let members: [Member]
    private let options: TemporalOptions
    /// Whether later points follow (late events must then be remembered).
    private let tracksLateEvents: Bool
    /// With only `key` of a projection keyed by stream wanted: only its events are read.
    private let stream: String?
    /// How many streams were folded again for late events (see the type's doc).
    private(set) var refoldedStreams = 0
    /// Whether every state is read at each point (not one key's): snapshots are then
    /// loaded into memory (`BaseStates`).
    private let loadsBase: Bool

    /// - Parameters:
    ///   - first: the first point; the snapshots are chosen for it.
    ///   - end: the first point's last seq (see `SelectedRange.ends`).
    ///   - more: whether points follow the first.
    init(
        store: EventStore, states: TemporaryStates, projections: [Projection], first: TemporalSelection, end: Int64, more: Bool,
        key: String? = nil, options: TemporalOptions
    ) throws {
        self.store = store
        self.states = states
        self.options = options
        tracksLateEvents = more
        stream = projections.count == 1 && projections[0].key == .stream ? key : nil
        loadsBase = key == nil
        members = try projections.map { projection in
            let target = ReadModelTarget(
                projection: projection.name, kind: .temporary, columns: projection.columns, table: "audit_folded_" + projection.name)
            let (view, base) = try Self.start(projection, at: first, end: end, load: key == nil, store: store, states: states, options: options)
            try states.writeStates { db in try db.execute(sql: target.createSQL) }
            let run = try ProjectionRun(
                projection: projection, target: target, position: view?.seq ?? 0, limits: options.limits, parallel: options.parallel)
            run.base = base
            run.changes = ChangedStates()
            try run.honourParked(view?.parkedFirstSeqs ?? [:], restarts: false)
            let member = Member(projection: projection, run: run, base: base)
            member.snapshotParked = view?.parkedFirstSeqs ?? [:]
            Self.warnParked(member.snapshotParked, of: projection, store: store)
            return member
        }
    }

    /// The newest snapshot of `projection` usable at `time` (none without snapshots),
    /// found through `states`' transaction, which all later reads of it share, and the
    /// base a fold from it starts from (`BaseStates`; in memory with `load`).
    ///
    /// Loaded, its deltas are checked as they are read: only when one does not match its
    /// digest is the snapshot chosen again with every delta checked first (which warns,
    /// and passes over the damaged one and every later one).
    private static func start(
        _ projection: Projection, at time: TemporalSelection, end: Int64, load: Bool, store: EventStore,
        states: TemporaryStates, options: TemporalOptions
    ) throws -> (SnapshotView?, StateOverlay.Base) {
        guard options.useSnapshots else { return (nil, .none) }
        func choose(checking: Bool) throws -> SnapshotView? {
            try states.readStates { db in
                try Snapshots.newestUsable(
                    db, schema: "store", projection: projection, asOf: time.asOf, knownAt: time.knownAt, maxSeq: end,
                    limits: options.limits, checksDigests: checking, warn: { store.logger.warning("\($0)") })
            }
        }
        let view = try choose(checking: !load)
        if let base = try states.readStates({ db in try BaseStates.base(view, db, load: load) }) { return (view, base) }
        let checked = try choose(checking: true)
        guard let base = try states.readStates({ db in try BaseStates.base(checked, db, load: load) }) else {
            throw StoreError.storage("the snapshot of \(projection.name) at seq \(checked?.seq ?? 0) failed its check after passing it (internal error)")
        }
        return (checked, base)
    }

    /// Says on stderr that keys parked at the snapshot a fold starts from are answered
    /// from their last good states (a key the fold parks itself is said as it parks).
    private static func warnParked(_ parked: [String: Int64], of projection: Projection, store: EventStore) {
        guard !parked.isEmpty else { return }
        let shown = parked.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.prefix(3).map { "\($0.key) since seq \($0.value)" }
        let more = parked.count > 3 ? ", …" : ""
        store.logger.warning(
            "projection \(projection.name): \(parked.count) parked key\(parked.count == 1 ? "" : "s") (\(shown.joined(separator: ", "))\(more)) answered from their last good states; see audit dead-letters \(projection.name)")
    }

    private var replayOptions: ReplayOptions {
        var replay = ReplayOptions()
        replay.parallel = options.parallel
        replay.limits = options.limits
        replay.checkpointSeconds = .infinity  // nothing to resume: write once per point
        return replay
    }

    /// Folds on to `point`, whose last selected seq is `end` (neither before the
    /// previous point's).
    /// - Throws: the first `ProjectionError` of a handler on a selected event.
    func advance(to point: TemporalSelection, end: Int64) throws {
        var selection = EventSelection(types: [], asOf: point.asOf)
        selection.stream = stream
        selection.reportsSkipped = tracksLateEvents && point.asOf != nil
        let passing = members.filter { !$0.foldsPerPoint }
        try fold(passing.map(\.run), end: end, selection)
        for member in passing {
            let run = member.run
            let asOf = point.asOf.map(\.description)
            let due = run.skipped.filter { asOf == nil || $0.occurredAt <= asOf! }
            guard !due.isEmpty else { continue }
            run.skipped.removeAll { asOf == nil || $0.occurredAt <= asOf! }
            if member.projection.key == .stream {
                try refold(member, streams: Set(due.map(\.stream)).sorted(), to: point, end: end)
            } else {
                member.foldsPerPoint = true
            }
        }
        for member in members where member.foldsPerPoint {
            try foldAlone(member, at: point, end: end)
        }
    }

    private func fold(_ runs: [ProjectionRun], end: Int64, _ selection: EventSelection) throws {
        try store.pass(runs, end: end, selection: selection, options: replayOptions, states: states)
        if let failure = runs.compactMap(\.failure).first { throw failure }
    }

    /// Folds `streams` of `member` (keyed by stream) again: each one's state back to the
    /// snapshot's (or to `init`), then its events after the snapshot that `point` selects.
    private func refold(_ member: Member, streams: [String], to point: TemporalSelection, end: Int64) throws {
        let run = member.run
        refoldedStreams += streams.count
        run.unparkInPlace(streams)  // folded again from the snapshot, they may fail elsewhere
        try states.readStates { db in
            for stream in streams {
                let partition = run.partition(ofStream: stream)
                // A key the fold never saw is read from the snapshot when its event comes.
                // (Until a VM lets go of states, the VMs hold every state the fold changed.)
                let changed = try partition.vm.stateJSON(key: stream) != nil || (run.cache != nil && run.changes?.state(of: stream) != nil)
                guard changed else { continue }
                try partition.vm.provideState(key: stream, json: try member.base.state(of: stream, db))
            }
        }
        run.position = run.startPosition
        var selection = EventSelection(types: [], asOf: point.asOf)
        selection.streams = streams
        try fold([run], end: end, selection)
    }

    /// Folds `member` alone as of `point`, from its newest snapshot usable there.
    private func foldAlone(_ member: Member, at point: TemporalSelection, end: Int64) throws {
        let target = ReadModelTarget(
            projection: member.projection.name, kind: .temporary, columns: member.projection.columns,
            table: "audit_point_" + member.projection.name)
        let (view, base) = try Self.start(
            member.projection, at: point, end: end, load: loadsBase, store: store, states: states, options: options)
        try states.writeStates { db in
            try db.execute(sql: "DROP TABLE IF EXISTS main.\(target.quotedTable)")
            try db.execute(sql: target.createSQL)
        }
        let run = try ProjectionRun(
            projection: member.projection, target: target, position: view?.seq ?? 0, limits: options.limits,
            parallel: options.parallel)
        run.base = base
        run.changes = ChangedStates()
        try run.honourParked(view?.parkedFirstSeqs ?? [:], restarts: false)
        var selection = EventSelection(types: [], asOf: point.asOf)
        selection.stream = stream
        try fold([run], end: end, selection)
        member.pointBase = base
        member.pointChanges = run.changes!
        member.pointRun = run
        member.snapshotParked = view?.parkedFirstSeqs ?? [:]
    }
}

extension ProjectionRun {
    /// The partition that folds `stream`'s events (as the reader's hash splits them).
    fileprivate func partition(ofStream stream: String) -> Partition {
        guard partitions.count > 1 else { return partitions[0] }
        var stream = stream
        let hash = stream.withUTF8 { EventBatchReader.streamHash($0) }
        return partitions[Int(hash % UInt64(partitions.count))]
    }
}
