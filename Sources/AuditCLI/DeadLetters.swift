import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct DeadLetters: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dead-letters",
            abstract: "List the keys parked by projections with on_error = \"park\", or fold them again (retry).",
            discussion: """
                A parked key's handler failed deterministically at its first_seq: its state stays as \
                its last good event left it, and that event and its later ones are its dead letters, \
                not folded. After raising a limit on the command line, `retry` folds them again with \
                the same code; after changing the code, `audit replay` rebuilds the projection and \
                folds them with the new code.

                Examples:
                  audit dead-letters
                  audit dead-letters balances acct-2
                  audit dead-letters retry balances --instructions 10000000
                """,
            subcommands: [List.self, Retry.self], defaultSubcommand: List.self)
    }
}

extension AuditCommand.DeadLetters {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List parked keys: projection, key, first_seq, dead_letters, error (with handler and file:line).",
            discussion: """
                With NAME and KEY: that parked key's dead letters, one row per event not folded: \
                seq, type, occurred_at (a KEY that is not parked exits 65).
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Only this projection's parked keys.", completion: WorkspaceCompletion.projections) var name: String?
        @Argument(help: "A parked key of NAME: list its dead letters.") var key: String?
        @Option(help: "table, json, jsonl or csv.") var format: OutputFormat = .table
        @OptionGroup var spreadsheet: SpreadsheetOptions

        func run() throws {
            let store = try openStore(global, access: .readOnly)
            if let name, try store.projectionRecords().live[name] == nil {
                throw ProjectionError(projection: name, message: "the database has no projection \(name) (see audit projections)")
            }
            if let name, let key {
                let rows: [[SQLValue]] = try store.deadLetters(projection: name, key: key).map {
                    [.integer($0.seq), .text($0.type), .text($0.occurredAt)]
                }
                try ResultWriter.write(
                    columns: ["seq", "type", "occurred_at"], rows: rows, format: format, spreadsheetSafe: try spreadsheet.protects(format))
                return
            }
            let parked = try store.parkedKeys(projection: name)
            let rows: [[SQLValue]] = parked.map {
                [.text($0.projection), .text($0.key), .integer($0.firstSeq), .integer(Int64($0.deadLetters)), .text($0.error)]
            }
            try ResultWriter.write(
                columns: ["projection", "key", "first_seq", "dead_letters", "error"], rows: rows, format: format,
                spreadsheetSafe: try spreadsheet.protects(format))
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fold parked keys' dead letters again with the table's code (e.g. under raised limits).",
            discussion: """
                Prints one JSON line per key: {"key":…,"refolded":N,"status":"unparked"} or, when it \
                fails again, "status":"parked" with its new first_seq and error. When the folder's code \
                is not the code the table was built with, exits 1 saying that a rebuild is needed \
                (`audit replay NAME`).
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Argument(help: "The projection.", completion: WorkspaceCompletion.projections) var name: String
        @Argument(help: "Keys to retry (default: all its parked keys).") var keys: [String] = []
        @OptionGroup var limitOptions: LimitOptions

        func run() throws {
            let store = try openStore(global)
            let limits = limitOptions.limits
            guard let loaded = try workspace.loadProjections([name], limits: limits).first else {
                throw ProjectionError(projection: name, message: "no projection \(name) in \(workspace.projections)/")
            }
            let projection = try loaded.get()
            var options = ReplayOptions()
            options.limits = limits
            let outcomes = try store.retryParked(projection, keys: keys.isEmpty ? nil : keys, options: options)
            var out = Output()
            for outcome in outcomes {
                var line = #"{"key":\#(json(outcome.key)),"refolded":\#(outcome.refolded)"#
                if let again = outcome.parkedAgain {
                    line += #","status":"parked","first_seq":\#(again.firstSeq),"error":\#(json(again.error))}"#
                    warn("audit: warning: key \(outcome.key) of \(name) failed again at seq \(again.firstSeq): \(again.error)")
                } else {
                    line += #","status":"unparked"}"#
                }
                try out.line(line)
            }
            try out.flush()
        }
    }
}
