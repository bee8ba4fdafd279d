import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List stored events in seq order, with all stored fields.",
            discussion: """
                With --follow, prints the selected events as JSONL as they are committed, until \
                SIGINT or SIGTERM (exit 0): from --from-seq on (stored ones first), else only the \
                events committed from now on; --to-seq and --limit end it.

                Examples:
                  audit events --stream S45359
                  audit events --type Payment --as-of 2005-12-31 --format csv
                  audit events --from-seq 100 --limit 10 --format table
                  audit events --follow --type Payment
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var time: TimeOptions

        @Option(help: "Only this stream.") var stream: String?
        @Option(help: "Only this event type.") var type: String?
        @Option(help: ArgumentHelp("Only events whose meta.correlation_id is this.", valueName: "id")) var correlationId: String?
        @Option(help: ArgumentHelp("Only events from this seq on.", valueName: "seq")) var fromSeq: Int64?
        @Option(help: ArgumentHelp("Only events up to this seq.", valueName: "seq")) var toSeq: Int64?
        @Option(help: "At most this many events.") var limit: Int?
        @Option(help: "jsonl, json, csv or table.") var format: OutputFormat = .jsonl
        @OptionGroup var spreadsheet: SpreadsheetOptions
        @Flag(help: "Go on printing events as they are committed (JSONL), until SIGINT/SIGTERM.") var follow = false

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more") }
            if follow, format != .jsonl { throw ValidationError("--follow prints JSONL: leave out --format \(format.rawValue)") }
        }

        func run() throws {
            let spreadsheetSafe = try spreadsheet.protects(format)
            let filter = EventFilter(
                stream: stream, type: type, correlationId: correlationId, fromSeq: fromSeq, toSeq: toSeq, asOf: time.asOf, knownAt: time.knownAt,
                limit: limit)
            let store = try openStore(global, access: .readOnly)
            if follow { return try printFollowing(filter, store: store) }
            switch format {
            case .jsonl, .json:
                var out = Output()
                var first = true
                if format == .json { try out.line("[") }
                try store.forEachEvent(filter) { event in
                    if format == .json {
                        try out.line((first ? "" : ",") + event.jsonLine)
                    } else {
                        try out.line(event.jsonLine)
                    }
                    first = false
                }
                if format == .json { try out.line("]") }
                try out.flush()
            case .csv, .table:
                var writer = TabularWriter(
                    columns: ["seq", "id", "stream", "version", "type", "occurred_at", "recorded_at", "data", "meta", "hash"],
                    format: format)
                writer.spreadsheetSafe = spreadsheetSafe
                try store.forEachEvent(filter) { e in
                    try writer.row([
                        String(e.seq), e.id, e.stream, String(e.version), e.type, e.occurredAt.description,
                        e.recordedAt.description, e.data, e.meta, e.hashHex,
                    ])
                }
                try writer.finish()
            }
        }
    }
}
