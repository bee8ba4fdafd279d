import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a saved query (queries/NAME.sql) or inline SQL over the projections' tables and events.",
            discussion: """
                Each projection is a table named after it (key, state, and its declared columns); \
                the events table is readable too. Parameters are :name placeholders bound with \
                --param name=value (decimal integers bind as integers, anything else as text).

                Examples:
                  audit query open_orders
                  audit query --sql 'SELECT * FROM events WHERE type = :t' --param t=Payment
                  audit query outstanding_fines --as-of 2005-12-31

                Without a time, the projections the SQL reads are first brought up to date: folded \
                forward from their checkpoints with the code that built them (waiting at most --wait \
                seconds for another process's replay). --no-catch-up answers from the tables as they \
                are and says how far each is behind; a failed projection exits 65 unless --stale-ok.

                With --as-of/--known-at, the projections the SQL reads are folded as they were then \
                (from their newest usable snapshots) into a temporary database, and `events` holds only \
                the selected events; the live tables are not touched.

                A series runs the query at the end of each day, week, month, quarter or year, in \
                one pass, with a leading as_of column. A restatement compares what was known at \
                two times (rows matched by --key, default the first column, with a change column).

                Examples:
                  audit query outstanding_fines --as-of-each month \\
                    --from 2005-01-01 --to 2005-12-31
                  audit query outstanding_fines --known-at-each quarter \\
                    --from 2024-01-01 --to 2024-12-31
                  audit query outstanding_fines --as-of 2005-12-31 \\
                    --known-at 2024-01-01 --compare-known-at 2024-06-30

                --as-reported reruns a report as it was made at a system time: over the events \
                recorded by then, with the projection code whose builds were live then (the \
                database keeps every build's code) and, for a saved query, the text that query \
                exports and reports recorded last by then.

                Example:
                  audit query outstanding_fines --as-of 2005-06-30 \\
                    --as-reported 2024-07-05
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var query: QueryText
        @OptionGroup var time: TimeOptions
        @OptionGroup var series: SeriesOptions
        @OptionGroup var reported: AsReportedOption
        @Option(help: ArgumentHelp(
            "Compare with what was known at this time (a restatement): the rows added, removed and changed since --known-at. \(TimeArgument.selectingForms).",
            valueName: "time"), transform: TimeArgument.selecting)
        var compareKnownAt: Timestamp?
        @Option(help: ArgumentHelp(
            "With --compare-known-at: the column(s) that match rows (repeatable; default: the first column).", valueName: "column"))
        var key: [String] = []
        @Flag(help: "With a time: fold from seq 1 instead of the newest usable snapshots.") var noSnapshots = false
        @Option(help: ArgumentHelp("With a time: workers for projections keyed by stream.", valueName: "n"))
        var parallel = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "table, csv, json or jsonl.") var format: OutputFormat = .table
        @OptionGroup var spreadsheet: SpreadsheetOptions
        @OptionGroup var current: CatchUpArguments

        func validate() throws {
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
            try reported.validate(time, series: series, comparing: compareKnownAt != nil)
            if compareKnownAt != nil {
                if time.knownAt == nil { throw ValidationError("--compare-known-at compares with --known-at: give both") }
                if series.isSeries { throw ValidationError("--compare-known-at compares two answers, not a series") }
            } else if !key.isEmpty {
                throw ValidationError("--key goes with --compare-known-at")
            }
        }

        func run() throws {
            let store = try openStoreForReading(global)
            var writer: ResultWriter?
            let safe = try spreadsheet.protects(format)
            let header = { (columns: [String]) in writer = try ResultWriter(columns: columns, format: format, spreadsheetSafe: safe) }
            let row = { (values: [SQLValue]) in try writer!.row(values) }
            if reported.asReported != nil {
                let (selection, projections) = try reported.projections(store, time)
                let (text, source) = try reported.sql(store, query, workspace)
                try store.query(
                    sql: text, parameters: query.parameters, source: source, at: selection, projections: projections,
                    options: temporalOptions, header: header, row: row)
                try writer?.finish()
                return
            }
            let (text, source, parameters) = try query.load(workspace)
            let points = try series.points(time)
            if time.selection.isCurrent, points == nil {
                try store.query(
                    sql: text, parameters: parameters, source: source, current: current.options(workspace, global), header: header, row: row)
                try writer?.finish()
                return
            }
            // Only projections that load can be folded; one the SQL reads that does not is named by SQLite.
            let projections = try workspace.loadableProjections()
            let options = temporalOptions
            if let points {
                try store.query(
                    sql: text, parameters: parameters, source: source, series: points, projections: projections, options: options,
                    header: header, row: row)
            } else if let compareKnownAt, let knownAt = time.knownAt {
                let changes = try store.compareQuery(
                    sql: text, parameters: parameters, source: source, asOf: time.asOf, knownAt: knownAt, comparedTo: compareKnownAt,
                    keys: key, projections: projections, options: options)
                if !changes.matchedByKey {
                    warn("audit: the key column(s) \(key.isEmpty ? "(the first)" : key.joined(separator: ", ")) do not identify the rows (a value appears twice): showing the rows removed and added")
                }
                try header(changes.columns)
                for values in changes.rows { try row(values) }
            } else {
                try store.query(
                    sql: text, parameters: parameters, source: source, at: time.selection, projections: projections, options: options,
                    header: header, row: row)
            }
            try writer?.finish()
        }

        private var temporalOptions: TemporalOptions {
            var options = TemporalOptions()
            options.useSnapshots = !noSnapshots
            options.parallel = parallel
            return options
        }
    }
}
