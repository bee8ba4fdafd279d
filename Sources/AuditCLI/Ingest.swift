import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Ingest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append a JSONL file (or stdin) atomically: all its events, or on any bad line none.",
            discussion: """
                Prints {"appended":N,"duplicates":M,"last_seq":S}. Bad lines are reported on stderr \
                as FILE:LINE: reason (up to 20), and nothing is appended (exit 65; exit 3 for a \
                version conflict). Every line needs an "id", so that ingesting the same file again \
                is safe, unless --derive-ids or --generate-ids says how to make the missing ones.

                Example:
                  audit ingest road-fines.jsonl
                  cat events.jsonl | audit ingest -
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A JSONL file, or - for standard input.")
        var file: String = "-"

        @Flag(help: "Give lines without an id a random UUID (not idempotent: the same file ingested twice is stored twice).")
        var generateIds = false

        @Flag(help: "Give lines without an id one derived from their content and occurrence (idempotent; identical lines of two files are one event).")
        var deriveIds = false

        func validate() throws {
            if generateIds, deriveIds { throw ValidationError("give --generate-ids or --derive-ids, not both") }
        }

        @Sendable static func showProgress(_ p: IngestProgress) {
            let rate = p.seconds > 0 ? Double(p.events) / p.seconds : 0
            warnInPlace(String(format: "ingest: %ld events, %.0f events/s", p.events, rate))
        }

        func run() throws {
            let missingIds: MissingIds = generateIds ? .generate : deriveIds ? .derive : .refuse
            let summary = try openStore(global).ingest(
                path: file, missingIds: missingIds, progress: stderrIsTerminal ? Self.showProgress : nil)
            if stderrIsTerminal { ProgressLine.clear() }
            try printCommitted(summary.json, "the ingest was committed: \(summary.appended) events appended, \(summary.duplicates) already stored, the log ends at seq \(summary.lastSeq)")
        }
    }
}
