import Foundation
import GRDB

/// How `verifyProjections` rebuilds.
package struct ProjectionCheckOptions: Sendable {
    /// Start each rebuild from the newest snapshot of its code instead of seq 1: faster,
    /// but it trusts the snapshots, which live in the same writable file as the tables.
    package var fromSnapshots = false
    /// Workers for projections keyed by stream, as for replay.
    package var parallel = ProcessInfo.processInfo.activeProcessorCount
    /// Limits that replace those of every projection (give those the tables were built
    /// with); each one not given stays each projection's own.
    package var limits: LuaLimitOverrides?
    package var batchSize = 20_000

    package init() {}
}

/// What `verifyProjections` found for one projection.
package struct ProjectionCheck: Sendable, Equatable {
    package enum Status: Sendable, Equatable {
        /// The table holds exactly the states a rebuild from the log gives at its position.
        case ok
        /// It does not: `differences` (or `reason`) says how.
        case differs
        /// It could not be compared: `reason` says why (a machine-dependent failure such
        /// as the memory limit, other code than the table's, no code). Not a difference.
        case couldNotCheck
        /// It has no table yet: nothing to check.
        case notBuilt
    }

    package var projection: String
    package var status: Status
    /// The live table's position, to which the rebuild folded.
    package var position: Int64?
    package var differences = TableDifferences()
    package var reason: String?
    /// The seq of the snapshot the rebuild started from (which it then trusted), if any.
    package var fromSnapshot: Int64?

    package init(projection: String, status: Status, position: Int64? = nil, reason: String? = nil) {
        self.projection = projection
        self.status = status
        self.position = position
        self.reason = reason
    }
}

extension EventStore {
    /// Rebuilds `projections` from the log into a temporary database, each to exactly
    /// its live table's position, and compares every key's state and declared columns
    /// with the live table.
    ///
    /// - The log is the only input trusted: the rebuild starts at seq 1 (with
    ///   `fromSnapshots`, from the newest snapshot, which it then trusts). Verify the
    ///   log first (`verify()`).
    /// - The live side is read in one read transaction (its catalog and its tables), so
    ///   a replay running meanwhile does not disturb the comparison.
    /// - It is the replay's fold (`pass`), into SQLite's own temporary database: nothing
    ///   is written to the store, and nothing is left behind, even when killed.
    /// - A rebuild that fails on a limit (memory, CPU time, the instruction budget: they
    ///   depend on the machine or on the limits given) could not check; one whose
    ///   handler fails on an event the table claims to have folded differs.
    /// - Complexity: one pass over the log up to the largest position, and one merge
    ///   pass over each table.
    package func verifyProjections(_ projections: [Projection], options: ProjectionCheckOptions = ProjectionCheckOptions()) throws -> [ProjectionCheck] {
        let states = try TemporaryStates(storePath: attachLocation)
        var checks: [String: ProjectionCheck] = [:]
        var runs: [(run: ProjectionRun, end: Int64)] = []
        // The keys parked at the snapshot each rebuild starts from (key -> first seq, error).
        var startParked: [String: [String: (seq: Int64, error: String)]] = [:]
        try states.writeStates { db in
            for projection in projections {
                var check = ProjectionCheck(projection: projection.name, status: .couldNotCheck)
                guard let live = try Row.fetchOne(
                    db, sql: "SELECT position, version, code_hash FROM store.projections WHERE name = ?", arguments: [projection.name])
                else {
                    check.status = .notBuilt
                    check.reason = "it has no table yet (audit replay builds it)"
                    checks[projection.name] = check
                    continue
                }
                let position: Int64 = live["position"]
                check.position = position
                if live["code_hash"] != projection.codeHash || live["version"] != projection.version {
                    check.reason = "its table was built by other code (version \(live["version"] as Int64), code \(String((live["code_hash"] as String).prefix(12)))…) than \(projection.file) (version \(projection.version)); replay it first, or check with the code that built it"
                    checks[projection.name] = check
                    continue
                }
                if let problem = try Self.tableProblem(db, projection) {
                    check.status = .differs
                    check.reason = problem
                    checks[projection.name] = check
                    continue
                }
                let target = ReadModelTarget(projection: projection.name, kind: .temporary, columns: projection.columns)
                try db.execute(sql: target.createSQL)
                var start: Int64 = 0
                var view: SnapshotView?
                if options.fromSnapshots, let snapshot = try Snapshots.newestUsable(
                    db, schema: "store", projection: projection, asOf: nil, knownAt: nil, maxSeq: position, limits: options.limits,
                    warn: { logger.warning("\($0)") })
                {
                    try SnapshotStates.restore(db, snapshot, into: target, schema: "store")
                    start = snapshot.seq
                    check.fromSnapshot = snapshot.seq
                    view = snapshot
                }
                checks[projection.name] = check
                let run = try ProjectionRun(
                    projection: projection, target: target, position: start, limits: options.limits, parallel: options.parallel)
                // It parks as a rebuild would, from the keys parked at its snapshot.
                try run.honourParked(view?.parkedFirstSeqs ?? [:], restarts: false)
                run.origin = view.map { .snapshot($0, schema: "store") } ?? StateOverlay.Base.none
                startParked[projection.name] = Dictionary(
                    (view?.parked ?? []).map { ($0.key, ($0.firstSeq, $0.error)) }, uniquingKeysWith: { a, _ in a })
                runs.append((run, position))
            }
        }
        var replay = ReplayOptions()
        replay.parallel = options.parallel
        replay.limits = options.limits
        replay.batchSize = options.batchSize
        replay.checkpointSeconds = .infinity  // nothing to resume: written at the end (or when a VM is half full)
        // One pass over the log, in segments: each run stops at its own table's position.
        for end in Set(runs.map(\.end)).sorted() {
            let folding = runs.filter { $0.end >= end && $0.run.isActive }.map(\.run)
            try pass(folding, end: end, selection: EventSelection(types: []), options: replay, states: states)
        }
        for (run, _) in runs {
            let name = run.projection.name
            if let failure = run.failure {
                if Self.dependsOnLimits(failure) {
                    checks[name]!.reason = "the rebuild stopped at a limit, which depends on the machine or the limits given, not on the log: \(failure) (give the limits the table was built with: --memory-mb, --instructions)"
                } else {
                    checks[name]!.status = .differs
                    checks[name]!.reason = "rebuilding it from the log fails (\(failure)), but its table claims to have folded the log up to seq \(checks[name]!.position!)"
                }
                continue
            }
            let differences = try states.readStates { db in try TableComparison.compare(db, table: name, columns: run.projection.columns) }
            checks[name]!.differences = differences
            checks[name]!.status = differences.isEmpty ? .ok : .differs
            if run.projection.onError == .park {
                let rebuilt = (startParked[name] ?? [:]).merging(run.parkedHere.mapValues { ($0.seq, $0.error) }) { a, _ in a }
                let position = checks[name]!.position!
                let stored = try states.readStates { db in try ParkedKeys.errors(db, table: name, schema: "store") }.filter { $0.value.seq <= position }
                if let (lines, onLimits) = ParkedKeys.compare(rebuilt: rebuilt, stored: stored) {
                    if onLimits {
                        checks[name]!.status = .couldNotCheck
                        checks[name]!.reason = "its parked keys differ where a limit parked them, which depends on the limits given (give the limits the table was built with: --instructions): " + lines.joined(separator: "; ")
                    } else {
                        checks[name]!.status = .differs
                        checks[name]!.reason = "its parked keys are not the rebuild's: " + lines.joined(separator: "; ")
                    }
                }
            }
        }
        return projections.compactMap { checks[$0.name] }
    }

    /// Whether a failure comes from a limit rather than from the code and the log: the
    /// memory limit and CPU time (machine-dependent, DECISIONS 11) and the instruction
    /// budget (which the table does not record, so it may have been built with another).
    static func dependsOnLimits(_ failure: ProjectionError) -> Bool { dependsOnLimits(failure.message) }

    static func dependsOnLimits(_ message: String) -> Bool {
        ["memory limit of", "not enough memory", "out of memory", "instruction budget", "CPU time"].contains { message.contains($0) }
    }

    /// What is wrong with the live table's shape, before any row is read: it is gone,
    /// or its columns are not the projection's.
    private static func tableProblem(_ db: Database, _ projection: Projection) throws -> String? {
        let columns = try Row.fetchAll(db, sql: "SELECT name, type FROM pragma_table_info(?, 'store')", arguments: [projection.name])
        guard !columns.isEmpty else { return "its table \(projection.name) is missing, although the catalog records it at a position" }
        let found = columns.map { "\(($0["name"] as String).lowercased()) \(($0["type"] as String).lowercased())" }
        let expected = ["key text", "state text"] + projection.columns.map { "\($0.name.lowercased()) \($0.type)" }
        guard found == expected else {
            return "its table's columns are (\(found.joined(separator: ", "))), not the projection's (\(expected.joined(separator: ", ")))"
        }
        return nil
    }
}
