import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Ingest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append a JSONL file (or stdin) atomically: all its events, or on any bad line none.",
            discussion: """
                Prints {"appended":N,"duplicates":M,"last_seq":S}. Bad lines are reported on stderr \
                as FILE:LINE: reason (up to 20), and nothing is appended (exit 65; exit 3 for a \
                version conflict).

                Example:
                  audit ingest road-fines.jsonl
                  cat events.jsonl | audit ingest -
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A JSONL file, or - for standard input.")
        var file: String = "-"

        @Sendable static func showProgress(_ p: IngestProgress) {
            let rate = p.seconds > 0 ? Double(p.events) / p.seconds : 0
            warnInPlace(String(format: "ingest: %ld events, %.0f events/s", p.events, rate))
        }

        func run() throws {
            let summary = try openStore(global).ingest(path: file, progress: stderrIsTerminal ? Self.showProgress : nil)
            if stderrIsTerminal { ProgressLine.clear() }
            var out = Output()
            try out.line(summary.json)
            try out.flush()
        }
    }
}
