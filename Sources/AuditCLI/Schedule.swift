import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Schedule: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the exports declared in the workspace file (audit.toml) on their schedules.",
            subcommands: [Run.self, List.self])

        /// The workspace file option of both subcommands.
        struct ConfigOptions: ParsableArguments {
            @Option(help: ArgumentHelp("The workspace file declaring the exports.", valueName: "file")) var config = "audit.toml"
        }

        struct Run: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Run scheduled exports: as a long-lived process, or with --once whatever is due now.",
                discussion: """
                    Prints one JSON line per run. Missed slots (the process was down) are caught up once, \
                    for the latest one. A failed slot is tried again 1, 5, 15 and 60 minutes after each \
                    failure (at most 5 attempts), while it is still the latest slot. \
                    With --once, exits 1 when a run failed (the failure is also in the log).

                    Examples:
                      audit schedule run --once
                      audit schedule run --once --retry-failed
                      audit schedule run --config /etc/audit/audit.toml
                    """)

            @OptionGroup var global: GlobalOptions
            @OptionGroup var options: ConfigOptions
            @Flag(help: "Run whatever is due now, then exit (for cron or a systemd timer).") var once = false
            @Flag(help: "With --once: also try again now every slot whose last attempt failed, if it is still the latest slot (before its backoff, and after its attempts are used up).")
            var retryFailed = false

            func validate() throws {
                if retryFailed, !once { throw ValidationError("--retry-failed goes with --once") }
            }

            func run() throws {
                let scheduler = ExportScheduler(store: try openStore(global), config: try ScheduleConfig.load(file: options.config))
                if once {
                    let outcomes = try scheduler.runDue(retryFailed: retryFailed)
                    try outcomes.forEach(report)
                    if outcomes.contains(where: { if case .failure = $0.result { return true } else { return false } }) {
                        throw ExitCode(1)
                    }
                    return
                }
                warn("audit: running \(scheduler.config.exports.count) scheduled export(s) from \(options.config); stop with Ctrl-C or SIGTERM")
                try scheduler.runForever(report: report)
            }

            private func report(_ outcome: ScheduledRunOutcome) throws {
                var out = Output()
                switch outcome.result {
                case .success(let result):
                    try out.line(#"{"export":\#(json(outcome.name)),"slot":"\#(outcome.slot)","status":"completed","result":\#(exportSummary(result))}"#)
                case .failure(let error):
                    try out.line(#"{"export":\#(json(outcome.name)),"slot":"\#(outcome.slot)","status":"failed","error":\#(json(error.description))}"#)
                    warn("audit: export \(outcome.name) (slot \(outcome.slot)) failed: \(error)")
                }
                try out.flush()
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show each scheduled export's schedule, last run, due and next runs, and what would make it fail.",
                discussion: """
                    Checks each export as a run would (its saved query and the projection tables it reads, \
                    its signing key, its destination) and names each problem in the problems column and on \
                    stderr; exits 1 when there is one.

                    Example:
                      audit schedule list --format json
                    """)

            @OptionGroup var global: GlobalOptions
            @OptionGroup var options: ConfigOptions
            @Option(help: "table, csv, json or jsonl.") var format: OutputFormat = .table
            @OptionGroup var spreadsheet: SpreadsheetOptions

            func run() throws {
                let scheduler = ExportScheduler(store: try openStore(global), config: try ScheduleConfig.load(file: options.config))
                var writer = try ResultWriter(
                    columns: [
                        "name", "schedule", "timezone", "last_slot", "last_status", "attempts", "last_error", "due", "retry_at", "next_slot",
                        "next_slot_local", "problems", "last_directory",
                    ], format: format, spreadsheetSafe: try spreadsheet.protects(format))
                var problems: [String] = []
                for (export, s) in zip(scheduler.config.exports, try scheduler.status()) {
                    func time(_ t: Timestamp?) -> SQLValue { t.map { .text($0.description) } ?? .null }
                    let found = scheduler.problems(of: export)
                    problems += found.map { "audit: export \(export.name): \($0)" }
                    try writer.row([
                        .text(s.name), .text(s.schedule.expression), .text(s.schedule.timeZoneName), time(s.lastSlot),
                        s.lastStatus.map(SQLValue.text) ?? .null, .integer(Int64(s.attempts)), s.lastError.map(SQLValue.text) ?? .null,
                        time(s.dueSlot), time(s.retryAt), time(s.nextSlot), s.nextSlot.map { .text(s.schedule.localTime($0)) } ?? .null,
                        found.isEmpty ? .null : .text(found.joined(separator: "; ")), s.lastDirectory.map(SQLValue.text) ?? .null,
                    ])
                }
                try writer.finish()
                problems.forEach(warn)
                if !problems.isEmpty { throw ExitCode(1) }
            }
        }
    }
}
