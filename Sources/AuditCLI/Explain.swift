import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the events that built one key's state, step by step, with the state after each.",
            discussion: """
                A fresh fold in its own VM: the projection's tables are not read or changed, so it \
                also shows what a changed script would compute. One line per event that changed \
                the key: {"seq":…,"occurred_at":…,"type":…,"id":…,"state":{…}}.

                Examples:
                  audit explain fine_balances S45359
                  audit explain fine_balances S45359 --as-of 2001-12-31 --format table
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var time: TimeOptions
        @Argument(help: "The projection.", completion: WorkspaceCompletion.projections) var name: String
        @Argument(help: "The key.") var key: String
        @Option(help: "jsonl, json, csv or table.") var format: OutputFormat = .jsonl
        @OptionGroup var spreadsheet: SpreadsheetOptions
        @OptionGroup var current: CatchUpArguments

        func run() throws {
            var store = try openStoreForReading(global)
            let projection = try workspace.loadProjections([name])[0].get()
            // Its table, when it has one, is brought up to date too, so that `state` then
            // agrees. A failed one is what explain is for: its fold shows the failure.
            if try store.projectionRecords().live[projection.name]?.status == "ok" {
                var options = current.options(workspace, global)
                options.staleOK = true
                store = try store.catchUp([projection.name], options: options).store
            }
            try writeHistory(store: store, projection: projection, key: key, time: time, format: format, spreadsheet: spreadsheet)
        }
    }
}

/// Prints the events that changed one key's state, with the state after each.
func writeHistory(
    store: EventStore, projection: Projection, key: String, time: TimeOptions, format: OutputFormat, spreadsheet: SpreadsheetOptions
) throws {
    let filter = EventFilter(asOf: time.asOf, knownAt: time.knownAt)
    var writer = try HistoryWriter(format: format, spreadsheetSafe: try spreadsheet.protects(format))
    var found = false
    try store.explain(projection, key: key, filter: filter) { step in
        found = true
        try writer.row(step)
    }
    try writer.finish()
    if !found { throw ProjectionError(projection: projection.name, message: "no event changed the state of key \"\(key)\"") }
}
