import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Projections: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List each projection: name, version, position, lag, events/s, status; exit 65 when one is failed.",
            discussion: """
                status is ok, building, failed: <reason>, stale (its code changed: the next replay \
                rebuilds it) or new (never built). lag is the events after its position; events_per_s \
                the rate of the last replay or catch-up that moved it. The database's projections the \
                folder lacks are listed too. Exits 65 when a projection is failed, naming each with its \
                error on stderr (for cron and monitoring). Keys parked by on_error = "park" leave a \
                projection ok: it exits 0 with a warning naming how many (see audit dead-letters).
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Option(help: "table, json, jsonl or csv.") var format: OutputFormat = .table
        @OptionGroup var spreadsheet: SpreadsheetOptions

        func run() throws {
            let store = try openStore(global, access: .readOnly)
            let head = try store.head().seq
            let (live, builds) = try store.projectionRecords()
            let stats = try store.replayStats()
            let columns = ["name", "version", "position", "lag", "events_per_s", "status"]
            var rows: [[SQLValue]] = []
            var failed: [String] = []
            let loaded = try workspace.loadProjections()
            func row(_ name: String, version: SQLValue, status: String) {
                let position = live[name]?.position ?? 0
                let rate = stats[name]?.eventsPerSecond.map { SQLValue.integer(Int64($0.rounded())) } ?? .null
                rows.append([.text(name), version, .integer(position), .integer(head - position), rate, .text(status)])
                if status.hasPrefix("failed: ") {
                    // The stored reason often names the projection itself ("projection P failed at seq N: …").
                    let reason = String(status.dropFirst(8))
                    failed.append(reason.hasPrefix("projection \(name) ") ? String(reason.dropFirst(11)) : "\(name): \(reason)")
                }
            }
            for result in loaded {
                let name = projectionName(result)
                let record = live[name]
                let build = builds[name]
                var status: String
                switch result {
                case .failure(let error): status = "failed: \(error.message)"
                case .success(let projection):
                    if let failure = Self.failure(record, build) {
                        status = failure
                    } else if build != nil {
                        status = "building"
                    } else if let record {
                        status = record.codeHash == projection.codeHash && record.version == projection.version ? "ok" : "stale"
                    } else {
                        status = "new"
                    }
                }
                row(name, version: (try? result.get()).map { .integer($0.version) } ?? .null, status: status)
            }
            // The database's projections the folder lacks: still served, still listed.
            let inFolder = Set(loaded.map { ProjectionNames.folded(projectionName($0)) })
            let lacking = try store.projectionRegistry().names.filter { !inFolder.contains(ProjectionNames.folded($0)) }
            for name in lacking {
                row(name, version: live[name].map { .integer($0.version) } ?? .null, status: Self.failure(live[name], builds[name]) ?? (live[name] == nil ? "building" : "ok"))
            }
            try ResultWriter.write(columns: columns, rows: rows, format: format, spreadsheetSafe: try spreadsheet.protects(format))
            if !lacking.isEmpty {
                warn("audit: warning: the database holds \(lacking.joined(separator: ", ")), which \(workspace.projections)/ lacks (listed from the database)")
            }
            try warnAboutUnknownTypes(store, loaded)
            // Parked keys leave the projection ok (exit 0), but said, for monitoring.
            for (name, keys) in Dictionary(grouping: try store.parkedKeys(), by: \.projection).sorted(by: { $0.key < $1.key }) {
                warn("audit: warning: projection \(name) has \(keys.count) parked key\(keys.count == 1 ? "" : "s") (first at seq \(keys.map(\.firstSeq).min()!)); see audit dead-letters \(name)")
            }
            // For cron and monitoring: a failed projection is a failure of the command.
            if !failed.isEmpty {
                for failure in failed { warn("audit: projection \(failure)") }
                throw ExitCode(65)
            }
        }

        /// "failed: <reason>" when the live table or its build in progress is failed.
        static func failure(_ record: ProjectionRecord?, _ build: ProjectionRecord?) -> String? {
            if let build, build.status == "failed" { return "failed: \(build.error ?? "unknown")" }
            if let record, record.status == "failed" { return "failed: \(record.error ?? "unknown")" }
            return nil
        }

        /// A handler for a type the log has never seen is usually a typo: say so, with
        /// the closest type that does occur.
        private func warnAboutUnknownTypes(_ store: EventStore, _ loaded: [Result<Projection, ProjectionError>]) throws {
            let known = try store.eventTypes()
            guard !known.isEmpty else { return }
            let knownSet = Set(known)
            for case .success(let projection) in loaded {
                for type in projection.handledTypes where !knownSet.contains(type) && type != Projection.catchAllType {
                    let hint = closestName(to: type, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
                    warn("audit: warning: projection \(projection.name) handles \"\(type)\", which never occurs in the log\(hint)")
                }
            }
        }
    }
}
