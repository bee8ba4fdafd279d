import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export raw events or a saved query's result to a new directory, with a manifest an auditor can verify.",
            discussion: """
                Writes data files (events-000001.jsonl …, or result-000001.csv and query.sql), then \
                manifest.sig (with --key) and manifest.json last, into a temporary directory renamed \
                into place when complete. Prints the manifest's summary as one JSON line.

                Examples:
                  audit export --out exports/2005 --type Payment --as-of 2005-12-31
                  audit export --name trail --incremental --into exports/trail --key k.key
                  audit export --query outstanding_fines --format csv --out exports/owed
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var current: CatchUpArguments
        @OptionGroup var time: TimeOptions

        @Option(help: ArgumentHelp("The directory to create (it must not exist).", valueName: "dir")) var out: String?
        @Option(help: ArgumentHelp("A folder that gets one directory per run, NAME-000001, NAME-000002, …", valueName: "folder")) var into: String?
        @Option(help: ArgumentHelp("The export's name: its runs form a chain (default: the query's name, or events).", valueName: "name")) var name: String?
        @Flag(help: "Continue from the last run of --name: exactly the events recorded since.") var incremental = false
        @Option(help: ArgumentHelp("Export this saved query's result (queries/NAME.sql) instead of events.", valueName: "name"), completion: WorkspaceCompletion.queries) var query: String?
        @Option(help: ArgumentHelp("A query parameter, name=value (repeatable).", valueName: "name=value")) var param: [String] = []
        @Option(help: "Only this stream.") var stream: String?
        @Option(help: "Only this event type.") var type: String?
        @Option(help: ArgumentHelp("Only events from this seq on.", valueName: "seq")) var fromSeq: Int64?
        @Option(help: ArgumentHelp("Only events up to this seq.", valueName: "seq")) var toSeq: Int64?
        @Option(help: "jsonl or csv.") var format: DataFormat = .jsonl
        @Option(help: ArgumentHelp("Sign the manifest with this Ed25519 key file (default: $AUDIT_SIGNING_KEY).", valueName: "file")) var key: String?
        @Option(help: ArgumentHelp("Start a new data file after this many rows.", valueName: "n")) var rowsPerFile = 1_000_000

        enum DataFormat: String, ExpressibleByArgument {
            case jsonl, csv
        }

        func validate() throws {
            if (out == nil) == (into == nil) { throw ValidationError("give --out DIR (a new directory) or --into FOLDER (one directory per run), one of them") }
            if query != nil, stream != nil || type != nil || fromSeq != nil || toSeq != nil {
                throw ValidationError("--stream, --type, --from-seq and --to-seq select events; a query export selects in its SQL")
            }
            if query == nil, !param.isEmpty { throw ValidationError("--param is for --query") }
            if current.noCatchUp {
                throw ValidationError("--no-catch-up is for reads: an export's manifest certifies the tables at its chain.seq, so a query export always brings them up to date")
            }
            if incremental, name == nil { throw ValidationError("--incremental continues a named export: give --name") }
            if incremental, query != nil { throw ValidationError("a query export cannot be --incremental: its result is a whole table") }
            if incremental, fromSeq != nil || toSeq != nil || time.asOf != nil || time.knownAt != nil {
                throw ValidationError("--incremental covers the events recorded since the last run; it takes no --from-seq, --to-seq, --as-of or --known-at")
            }
            for p in param where !p.contains("=") { throw ValidationError("--param takes name=value, not '\(p)'") }
            if rowsPerFile < 1 { throw ValidationError("--rows-per-file must be at least 1") }
            if let name, !ExportRequest.isValidName(name) { throw ValidationError("--name may use letters, digits, '.', '_' and '-'") }
            if let query, !SavedQuery.isValidName(query) { throw ValidationError("--query: " + SavedQuery.invalidNameMessage(query)) }
        }

        func run() throws {
            let store = try openStore(global)
            let content: ExportContent
            if let query {
                let sql = try SavedQuery.load(query, from: workspace.queries)
                // At a past time the projections the SQL reads are folded from their code.
                var projections: [Projection] = []
                if time.asOf != nil || time.knownAt != nil {
                    projections = try workspace.loadableProjections()
                }
                var selection = QuerySelection(
                    name: query, sql: sql, parameters: parseParameters(param), asOf: time.asOf, knownAt: time.knownAt, projections: projections)
                selection.current = current.options(workspace, global)
                content = .query(selection)
            } else {
                content = .events(EventExportSelection(
                    stream: stream, type: type, fromSeq: fromSeq, toSeq: toSeq, asOf: time.asOf, knownAt: time.knownAt))
            }
            let keyFile = key ?? ProcessInfo.processInfo.environment["AUDIT_SIGNING_KEY"]
            var request = ExportRequest(
                name: name ?? query ?? "events", content: content, format: format == .csv ? .csv : .jsonl,
                destination: out.map(ExportDestination.directory) ?? .folder(into!), incremental: incremental,
                signingKey: try keyFile.map(SigningKey.load))
            request.maxRowsPerFile = rowsPerFile
            request.progress = exportProgressHook()
            if testRowDelay != nil { request.progressEvery = 1 }
            let result = try store.export(request)
            if stderrIsTerminal { ProgressLine.clear() }
            try printCommitted(exportSummary(result), "the export was completed in \(result.directory)")
        }
    }
}

/// `name=value` pairs into a dictionary.
func parseParameters(_ pairs: [String]) -> [String: String] {
    var parameters: [String: String] = [:]
    for p in pairs {
        let parts = p.split(separator: "=", maxSplits: 1)
        parameters[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
    }
    return parameters
}

/// One JSON line describing a completed export.
func exportSummary(_ result: ExportResult) -> String {
    let m = result.manifest
    return #"{"directory":\#(json(result.directory)),"name":\#(json(m.name)),"run":\#(m.run),"rows":\#(m.rows),"#
        + #""from_seq":\#(m.selection.fromSeq),"to_seq":\#(m.selection.toSeq),"chain_head":"\#(m.chain.head)","#
        + #""manifest_sha256":"\#(result.manifestSHA256)","signed":\#(m.publicKey != nil)}"#
}

/// Progress on a terminal; and, for tests only, `AUDIT_TEST_EXPORT_ROW_DELAY_MS` slows
/// each progress step down so that a test can kill an export part-way.
func exportProgressHook() -> (@Sendable (Int64) -> Void)? {
    let delay = testRowDelay
    let terminal = stderrIsTerminal
    guard delay != nil || terminal else { return nil }
    return { rows in
        if terminal { ProgressLine.show("export: \(rows) rows") }
        if let delay { usleep(delay * 1000) }
    }
}

/// The test hook's delay per row, in milliseconds.
var testRowDelay: UInt32? { ProcessInfo.processInfo.environment["AUDIT_TEST_EXPORT_ROW_DELAY_MS"].flatMap { UInt32($0) } }
