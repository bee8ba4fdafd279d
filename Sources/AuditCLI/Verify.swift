import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole log: the hash chain, every stored value's type, the schema and the side tables; with --projections, also rebuild projections aside and compare them with their tables.",
            discussion: """
                Prints {"ok":true,"events":N,"head":"<hex>"}, or names the problems found (every problem \
                of the schema and the file, the first 20 bad seqs, and how many there are) and exits 4. \
                The database is opened read-only: nothing is written, not even beside it.

                Events holding values an older build accepted and this one refuses (a NUL in a stream) \
                are listed on stderr and in "accepted_by_older_build"; they are not damage.

                With --projections [NAME…] (default: every projection in the folder and every table the \
                database holds), each is rebuilt from the log alone into a temporary database, to its \
                table's position, and every key's state and columns are compared with the table: one JSON \
                line each, status ok, differs (exit 4, naming the first keys), could_not_check (exit 1: \
                a limit, other code, no code) or not_built. --from-snapshots starts from snapshots, which \
                is faster but trusts them (they are in the same writable file).

                Examples:
                  audit verify
                  audit verify --projections
                  audit verify --projections fine_balances --memory-mb 2048
                """)

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Also rebuild projections from the log and compare them with their tables.") var projections = false
        @Argument(
            help: "With --projections: the projections to check (default: all).", completion: WorkspaceCompletion.projections(folderOption: "--projections-dir"))
        var names: [String] = []
        @Option(help: ArgumentHelp("The projections folder.", valueName: "dir")) var projectionsDir = "projections"
        @Flag(help: "Start the rebuilds from snapshots (faster; trusts the snapshots).") var fromSnapshots = false
        @Option(help: ArgumentHelp("Workers for projections keyed by stream.", valueName: "n")) var parallel = ProcessInfo.processInfo.activeProcessorCount
        @OptionGroup var limitOptions: LimitOptions

        func validate() throws {
            if !projections, !names.isEmpty || fromSnapshots || !limitOptions.isEmpty {
                throw ValidationError("projection names, --from-snapshots, --memory-mb, --instructions and --seconds go with --projections")
            }
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
        }

        func run() throws {
            let report = try EventStore.verify(path: global.databasePath, progress: stderrIsTerminal ? Self.showProgress : nil)
            if stderrIsTerminal { ProgressLine.clear() }
            for (seq, note) in zip(report.olderBuildSeqs, report.olderBuildNotes) {
                warn("audit: note: seq \(seq): \(note)")
            }
            if report.olderBuildCount > report.olderBuildSeqs.count {
                warn("audit: note: … and \(report.olderBuildCount - report.olderBuildSeqs.count) more events accepted by an older build")
            }
            var out = Output()
            try out.line(report.json)
            guard projections else { return try out.flush() }
            let store = try EventStore(path: global.databasePath, access: .readOnly)
            let checks = try checkProjections(store)
            var differs = false, unchecked = false
            for check in checks {
                try out.line(Self.json(check))
                switch check.status {
                case .ok, .notBuilt: break
                case .differs:
                    differs = true
                    warn("audit: projection \(check.projection) differs from its rebuild from the log\(check.position.map { " at seq \($0)" } ?? ""): \(Self.summary(check))")
                case .couldNotCheck:
                    unchecked = true
                    warn("audit: could not check projection \(check.projection): \(check.reason ?? "")")
                }
            }
            if fromSnapshots {
                warn("audit: --from-snapshots: the rebuilds started from snapshots, which are in the same writable file as the tables: this check trusted them")
            }
            try out.flush()
            if differs { throw ExitCode(ExitCodes.code(for: .integrity)) }
            if unchecked { throw ExitCode(1) }
        }

        /// The named projections, or every one in the folder and every table the
        /// database holds; those that cannot be rebuilt are "could not check".
        private func checkProjections(_ store: EventStore) throws -> [ProjectionCheck] {
            var workspace = WorkspaceOptions()
            workspace.projections = projectionsDir
            let limits = limitOptions.limits
            let loaded = try workspace.loadProjections(names, limits: limits)
            var options = ProjectionCheckOptions()
            options.fromSnapshots = fromSnapshots
            options.parallel = parallel
            options.limits = limits
            let rebuilt = try store.verifyProjections(loaded.compactMap { try? $0.get() }, options: options)
            var unchecked: [ProjectionCheck] = []
            let live = try store.projectionRecords().live
            for case .failure(let error) in loaded {
                unchecked.append(ProjectionCheck(
                    projection: error.projection, status: .couldNotCheck, position: live[error.projection]?.position, reason: "it does not load: \(error)"))
            }
            if names.isEmpty {
                let inFolder = Set(loaded.map { ProjectionNames.folded(projectionName($0)) })
                for (name, record) in live.sorted(by: { $0.key < $1.key })
                where !inFolder.contains(ProjectionNames.folded(name)) {
                    unchecked.append(ProjectionCheck(
                        projection: name, status: .couldNotCheck, position: record.position,
                        reason: "the database holds its table, but \(projectionsDir)/ has no code for it"))
                }
            }
            return (rebuilt + unchecked).sorted { $0.projection < $1.projection }
        }

        static func json(_ check: ProjectionCheck) -> String {
            let status: String
            switch check.status {
            case .ok: status = "ok"
            case .differs: status = "differs"
            case .couldNotCheck: status = "could_not_check"
            case .notBuilt: status = "not_built"
            }
            var fields = [
                #""projection":\#(AuditCLI.json(check.projection))"#, #""status":"\#(status)""#,
                #""position":\#(check.position.map(String.init) ?? "null")"#,
            ]
            if check.status == .ok || (check.status == .differs && check.reason == nil) {
                let d = check.differences
                fields.append(#""keys":\#(d.keys)"#)
                if check.status == .differs {
                    let first = d.first.map { #"{"key":\#(AuditCLI.json($0.key)),"difference":"\#($0.kind.rawValue)","detail":\#(AuditCLI.json($0.detail))}"# }
                    fields += [#""changed":\#(d.changed)"#, #""missing":\#(d.missing)"#, #""extra":\#(d.extra)"#, #""first":[\#(first.joined(separator: ","))]"#]
                }
            }
            if let reason = check.reason { fields.append(#""reason":\#(AuditCLI.json(reason))"#) }
            if let seq = check.fromSnapshot { fields.append(#""from_snapshot":\#(seq)"#) }
            return "{" + fields.joined(separator: ",") + "}"
        }

        /// "2 changed, 1 missing, 0 extra; first: K (changed: state differs), …", or the reason.
        static func summary(_ check: ProjectionCheck) -> String {
            if let reason = check.reason { return reason }
            let d = check.differences
            let first = d.first.prefix(5).map { "\($0.key) (\($0.kind.rawValue): \($0.detail))" }
            return "\(d.changed) changed, \(d.missing) missing, \(d.extra) extra (of \(d.keys) keys rebuilt); first: "
                + first.joined(separator: ", ") + (d.first.count > 5 ? ", …" : "")
        }

        @Sendable static func showProgress(_ p: UpgradeProgress) {
            warnInPlace("verify: \(p.done) of \(p.total) events")
        }
    }
}
