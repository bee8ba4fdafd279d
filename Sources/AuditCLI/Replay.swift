import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring projections up to date from their checkpoints; rebuild those whose code changed.",
            discussion: """
                Prints one JSON line per projection: {"projection":…,"status":…,"position":…,"events":…} \
                with status up_to_date, updated, rebuilt, building or failed. A rebuild is made beside \
                the live table, which keeps serving queries until the new one replaces it. Exits 65 when \
                a projection failed (its error is on stderr); the others are still brought up to date.

                With --follow, it goes on: it folds what any process appends as it is committed, \
                until SIGINT or SIGTERM, which checkpoint and exit 0 (kill -9 loses nothing either: \
                the next start resumes from the last checkpoint). A projection file that changes \
                meanwhile is rebuilt beside its live table, which is kept current with its old \
                code, and swapped in once caught up. On a terminal, stderr shows one status line \
                per projection: position, lag and events/s.

                Examples:
                  audit replay
                  audit replay order_totals --rebuild
                  audit replay --follow
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions

        @Argument(help: "Projections to replay (default: all).", completion: WorkspaceCompletion.projections) var names: [String] = []
        @Flag(help: "Rebuild from seq 1 beside the live table even if the code did not change.") var rebuild = false
        @Flag(help: "Also build the folder's projections the database does not hold yet (it registers them); with --follow, also those added while it runs.") var add = false
        @Option(help: ArgumentHelp("Workers for projections keyed by stream: their keys are split across this many VMs (default: the number of active cores).", valueName: "n")) var parallel: Int?
        @Flag(help: "Neither start rebuilds from snapshots nor take any.") var noSnapshots = false
        @Option(help: ArgumentHelp("Stop at this seq.", valueName: "seq")) var toSeq: Int64?
        @Option(help: ArgumentHelp("Events read per batch.", valueName: "n")) var batchSize = 20_000
        @Option(help: ArgumentHelp("Events between checkpoints (default: every 30 s of work, and whenever a VM is half full).", valueName: "n")) var checkpointEvery: Int?
        @OptionGroup var limitOptions: LimitOptions
        @Flag(help: "Say on stderr where the replay's time went (what bounds it: see docs/operations.md).") var timings = false
        @Flag(help: "Go on: fold what is appended as it is committed, until SIGINT/SIGTERM.") var follow = false

        func validate() throws {
            if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
            if let parallel, parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
            if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1") }
            if follow, toSeq != nil { throw ValidationError("--follow follows the head: leave out --to-seq") }
        }

        func run() throws {
            let store = try follow ? openStoreToFollow() : openStore(global)
            var options = ReplayOptions()
            options.limits = limitOptions.limits
            // The top levels run under the limits of the run too.
            let loaded = try registered(workspace.loadProjections(names, limits: options.limits), store: store)
            options.rebuild = rebuild
            options.toSeq = toSeq
            options.batchSize = batchSize
            options.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
            options.checkpointEvery = checkpointEvery
            options.useSnapshots = !noSnapshots
            let projections = loaded.compactMap { try? $0.get() }
            if follow { return try runFollowing(store, projections, loaded: loaded, options: options) }
            if stderrIsTerminal { options.progress = ProgressLine.report }
            let started = ContinuousClock.now
            let outcomes = try store.replay(projections, options: options)
            if stderrIsTerminal { ProgressLine.clear() }
            if timings, let first = outcomes.first {
                let elapsed = (ContinuousClock.now - started).components
                let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
                warn(String(format: "audit: replay took %.2f s: ", seconds) + first.timings.summary)
            }
            try report(outcomes, loaded: loaded)
        }

        /// One JSON line per projection on stdout, the failures on stderr; exit 65 when
        /// one failed.
        func report(_ outcomes: [ReplayOutcome], loaded: [Result<Projection, ProjectionError>]) throws {
            var out = Output()
            var failures: [String] = []
            for case .failure(let error) in loaded {
                failures.append(error.description)
                try out.line(#"{"projection":\#(json(error.projection)),"status":"failed","position":null,"events":0}"#)
            }
            for outcome in outcomes {
                let status: String
                switch outcome.status {
                case .upToDate: status = "up_to_date"
                case .updated: status = "updated"
                case .rebuilt: status = "rebuilt"
                case .building: status = "building"
                case .failed(let error):
                    status = "failed"
                    failures.append(error.description)
                }
                try out.line(#"{"projection":\#(json(outcome.projection)),"status":"\#(status)","position":\#(outcome.position),"events":\#(outcome.eventsApplied)}"#)
            }
            for failure in failures { warn("audit: \(failure)") }
            try out.flush()
            if !failures.isEmpty { throw ExitCode(65) }
        }
    }
}

extension AuditCommand.Replay {
    /// The loaded projections the database holds (all of them in a database holding
    /// none yet, and newcomers with --add), after a warning naming both sets when the
    /// folder's differ from the database's (DECISIONS 15).
    ///
    /// - Throws: a usage error when a projection named on the command line is not
    ///   registered and --add is not given.
    func registered(_ loaded: [Result<Projection, ProjectionError>], store: EventStore) throws -> [Result<Projection, ProjectionError>] {
        let registry = try store.projectionRegistry()
        // With names, `loaded` holds only those: what the folder lacks is not in question.
        let folder = loaded.map(projectionName)
        let plan = registry.plan(folder: folder, named: names.isEmpty ? [] : folder, add: add)
        if !names.isEmpty, !plan.notAdded.isEmpty {
            throw ValidationError(
                "the database at \(store.path) does not hold projection(s) \(plan.notAdded.joined(separator: ", ")) "
                    + "(it holds \(registry.names.joined(separator: ", "))); `audit replay --add \(plan.notAdded.joined(separator: " "))` builds them")
        }
        if plan.differs {
            var parts: [String] = []
            if !plan.lacking.isEmpty {
                parts.append("\(workspace.projections)/ lacks \(plan.lacking.joined(separator: ", ")) (left as they are)")
            }
            if !plan.notAdded.isEmpty {
                parts.append("\(workspace.projections)/ holds \(plan.notAdded.joined(separator: ", ")), which the database does not (not built; `audit replay --add` builds them)")
            }
            warn("audit: warning: the database at \(store.path) holds projections \(registry.names.joined(separator: ", ")); "
                + "the folder \(workspace.projections)/ holds \(folder.joined(separator: ", ")): " + parts.joined(separator: "; "))
        }
        let replayed = Set(plan.replay)
        return loaded.filter { replayed.contains(projectionName($0)) }
    }
}

/// A JSON string literal.
func json(_ text: String) -> String {
    SQLValue.text(text).json
}

/// The one-line progress display on a terminal's stderr.
enum ProgressLine {
    @Sendable static func report(_ p: ReplayProgress) {
        let done = Double(p.position - p.start), total = Double(max(1, p.end - p.start))
        let rate = p.seconds > 0 ? Double(p.eventsRead) / p.seconds : 0
        let eta = rate > 0 && done < total ? String(format: ", ETA %.0f s", (total - done) / max(1, done) * p.seconds) : ""
        warnInPlace(String(format: "replay: seq %lld of %lld (%.0f%%), %.0f events/s%@", p.position, p.end, done / total * 100, rate, eta))
    }

    /// Rewrites the progress line in place.
    static func show(_ text: String) {
        StandardStreams.writeTerminalControls(TerminalLine.rewrite(text))
    }

    static func clear() {
        StandardStreams.writeTerminalControls(TerminalLine.clear())
    }
}
