import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a saved query (queries/NAME.sql) or inline SQL over the projections' tables and events.",
            discussion: """
                Each projection is a table named after it (key, state, and its declared columns);
                the events table is readable too. Parameters are :name placeholders bound with
                --param name=value (decimal integers bind as integers, anything else as text).
                Examples:
                  audit query open_orders
                  audit query --sql 'SELECT count(*) AS n FROM events WHERE type = :t' --param t=Payment
                  audit query outstanding_fines --as-of 2005-12-31
                Without a time, the projections the SQL reads are first brought up to date: folded forward
                from their checkpoints with the code that built them (waiting at most --wait seconds for
                another process's replay). --no-catch-up answers from the tables as they are and says
                how far each is behind; a failed projection exits 65 unless --stale-ok.
                With --as-of/--known-at, the projections the SQL reads are folded as they were then
                (from their newest usable snapshots) into a temporary database, and `events` holds only
                the selected events; the live tables are not touched.
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Argument(help: "A saved query's name (queries/NAME.sql).") var name: String?
        @Option(help: "Inline SQL instead of a saved query.") var sql: String?
        @Option(help: ArgumentHelp("A parameter, name=value (repeatable).", valueName: "name=value")) var param: [String] = []
        @OptionGroup var time: TimeOptions
        @Flag(help: "With a time: fold from seq 1 instead of the newest usable snapshots.") var noSnapshots = false
        @Option(help: ArgumentHelp("With a time: workers for projections keyed by stream.", valueName: "n"))
        var parallel = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "table, csv, json or jsonl.") var format: OutputFormat = .table
        @OptionGroup var current: CatchUpArguments

        func validate() throws {
            if (name == nil) == (sql == nil) { throw ValidationError("give a saved query's name or --sql, not both") }
            if let name, !SavedQuery.isValidName(name) { throw ValidationError(SavedQuery.invalidNameMessage(name)) }
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
            for p in param where !p.contains("=") { throw ValidationError("--param takes name=value, not '\(p)'") }
        }

        func run() throws {
            let store = try openStoreForReading(global)
            var text = sql ?? ""
            var source = "--sql"
            if let name {
                source = SavedQuery.file(name, in: workspace.queries)
                text = try SavedQuery.load(name, from: workspace.queries)
            }
            var parameters: [String: String] = [:]
            for p in param {
                let parts = p.split(separator: "=", maxSplits: 1)
                parameters[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            var writer: ResultWriter?
            let header = { (columns: [String]) in writer = try ResultWriter(columns: columns, format: format) }
            let row = { (values: [SQLValue]) in try writer!.row(values) }
            if time.selection.isCurrent {
                try store.query(sql: text, parameters: parameters, source: source, current: current.options(workspace), header: header, row: row)
            } else {
                // Only projections that load can be folded; one the SQL reads that does not is named by SQLite.
                let loaded = try workspace.loadProjections()
                for case .failure(let error) in loaded { warn("audit: warning: \(error)") }
                var options = TemporalOptions()
                options.useSnapshots = !noSnapshots
                options.parallel = parallel
                try store.query(
                    sql: text, parameters: parameters, source: source, at: time.selection,
                    projections: loaded.compactMap { try? $0.get() }, options: options, header: header, row: row)
            }
            try writer?.finish()
        }
    }
}
