import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Projections: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List each projection: name, version, position, lag, status.",
            discussion: """
                status is ok, building, failed: <reason>, stale (its code changed: the next replay \
                rebuilds it) or new (never built).
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Option(help: "table, json, jsonl or csv.") var format: OutputFormat = .table
        @OptionGroup var spreadsheet: SpreadsheetOptions

        func run() throws {
            let store = try openStore(global, access: .readOnly)
            let head = try store.head().seq
            let (live, builds) = try store.projectionRecords()
            let columns = ["name", "version", "position", "lag", "status"]
            var rows: [[SQLValue]] = []
            let loaded = try workspace.loadProjections()
            for result in loaded {
                let name = projectionName(result)
                let record = live[name]
                let build = builds[name]
                var status: String
                switch result {
                case .failure(let error): status = "failed: \(error.message)"
                case .success(let projection):
                    if let build, build.status == "failed" {
                        status = "failed: \(build.error ?? "unknown")"
                    } else if let record, record.status == "failed" {
                        status = "failed: \(record.error ?? "unknown")"
                    } else if build != nil {
                        status = "building"
                    } else if let record {
                        status = record.codeHash == projection.codeHash && record.version == projection.version ? "ok" : "stale"
                    } else {
                        status = "new"
                    }
                }
                let version: SQLValue = (try? result.get()).map { .integer($0.version) } ?? .null
                let position = record?.position ?? 0
                rows.append([.text(name), version, .integer(position), .integer(head - position), .text(status)])
            }
            try ResultWriter.write(columns: columns, rows: rows, format: format, spreadsheetSafe: try spreadsheet.protects(format))
            try warnAboutUnknownTypes(store, loaded)
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
