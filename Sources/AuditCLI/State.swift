import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct State: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a projection's state: every key, or one.",
            discussion: """
                With --format jsonl (the default), one line per key, {"key":…,"state":{…}}, keys sorted.
                Examples:
                  audit state order_totals
                  audit state fine_balances S45359 --format json
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The projection.") var name: String
        @Argument(help: "Only this key.") var key: String?
        @Option(help: "jsonl, json, csv or table.") var format: OutputFormat = .jsonl

        func run() throws {
            let store = try openStore(global)
            var found = false
            switch format {
            case .jsonl, .json:
                var out = Output()
                if format == .json { out.line("[") }
                try store.forEachState(projection: name, key: key) { key, state in
                    let line = #"{"key":\#(json(key)),"state":\#(state)}"#
                    out.line(format == .json && found ? "," + line : line)
                    found = true
                }
                if format == .json { out.line("]") }
                out.flush()
            case .csv, .table:
                var writer = TabularWriter(columns: ["key", "state"], format: format)
                try store.forEachState(projection: name, key: key) { key, state in
                    writer.row([key, state])
                    found = true
                }
                writer.finish()
            }
            if let key, !found {
                throw ProjectionError(projection: name, message: "no state for key \"\(key)\"")
            }
        }
    }
}
