import Foundation
import GRDB

/// What `EventStore.retryParked` did for one parked key.
public struct RetryOutcome: Sendable, Equatable {
    public var key: String
    /// Its dead letters folded.
    public var refolded: Int
    /// Where it failed again, when it did: it stays parked from there.
    public var parkedAgain: ParkedKey?
}

/// A retry that cannot fold with the table's code: only a rebuild can.
public struct RetryNeedsRebuild: AuditFailure {
    public var projection: String
    public var category: FailureCategory { .failure }
    public var description: String {
        "the code of projection \(projection) is not the code its table was built with: run `audit replay \(projection)` "
            + "to rebuild it, which folds the parked events with the new code (keys that fail again are parked again)"
    }
}

extension EventStore {
    /// Folds the dead letters of parked keys again with the code the table was built
    /// with (`projection` must be that code), e.g. after a limit was raised with
    /// `options.limits`. Each key goes on from its last good state; one that fails
    /// again stays parked from the event that failed. The states, the parked set and
    /// the dead letters change in one transaction per key.
    ///
    /// - Parameter keys: the keys to retry (default: every parked key).
    /// - Throws: `RetryNeedsRebuild` when the code differs from the table's.
    public func retryParked(_ projection: Projection, keys: [String]? = nil, options: ReplayOptions = ReplayOptions()) throws -> [RetryOutcome] {
        let lock = try ReplayLock(databasePath: path)
        defer { withExtendedLifetime(lock) {} }
        let (record, parked) = try readTransaction { db in
            (try ReadModel.record(db, name: projection.name, build: false), try ParkedKeys.list(db, projection: projection.name))
        }
        guard let record else {
            throw ProjectionError(projection: projection.name, message: "projection \(projection.name) has no table yet: run `audit replay`")
        }
        guard record.codeHash == projection.codeHash, record.version == projection.version else {
            throw RetryNeedsRebuild(projection: projection.name)
        }
        var chosen = parked
        if let keys {
            let byKey = Dictionary(parked.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            chosen = try keys.map { key in
                guard let found = byKey[key] else {
                    throw ProjectionError(projection: projection.name, message: "key \(key) is not parked (see audit dead-letters \(projection.name))")
                }
                return found
            }
        }
        return try chosen.map { try retry($0, projection: projection, record: record, options: options) }
    }

    /// Folds one parked key's events from its first seq to the table's position, alone,
    /// until it folds them all or parks again at the same seq twice.
    private func retry(_ parked: ParkedKey, projection: Projection, record: ProjectionRecord, options: ReplayOptions) throws -> RetryOutcome {
        if parked.firstSeq > record.position {
            // Parked by a replay killed before its next checkpoint: nothing was skipped yet.
            try writeTransaction { db in try ParkedKeys.clear(db, table: projection.name, keys: [parked.key]) }
            return RetryOutcome(key: parked.key, refolded: 0, parkedAgain: nil)
        }
        var again: ParkRequest?
        let chain = try readTransaction { db in try Snapshots.chain(db, projection: projection, create: false) }
        while true {
            let target = ReadModelTarget(projection: projection.name, isBuild: false, columns: projection.columns)
            let run = try ProjectionRun(
                projection: projection, target: target, position: parked.firstSeq - 1, times: FoldedTimes(record),
                limits: options.limits, parallel: 1)
            run.retrying = ProjectionRun.Retry(key: parked.key, parkedAgain: again, firstSeq: parked.firstSeq, snapshotChain: chain)
            for partition in run.partitions {
                partition.parks = true
                partition.vm.assumeNoStoredStates(false)
                partition.vm.foldOnlyParked(true)
                try partition.vm.park(key: parked.key, firstSeq: again?.seq ?? .max)
            }
            var once = ReplayOptions()
            once.checkpointSeconds = .infinity  // one checkpoint, at the table's position
            once.limits = options.limits
            once.useSnapshots = false
            try pass([run], end: record.position, selection: EventSelection(types: []), options: once, states: self)
            if let failure = run.failure { throw failure }
            if let request = run.parkRequests.first {
                again = request  // fold again up to the event that failed, which stays parked
                continue
            }
            let parkedAgain = again.map {
                ParkedKey(projection: projection.name, key: parked.key, firstSeq: $0.seq, error: $0.error, parkedAt: Timestamp.now().description, deadLetters: 0)
            }
            return RetryOutcome(key: parked.key, refolded: run.eventsApplied, parkedAgain: parkedAgain)
        }
    }
}
