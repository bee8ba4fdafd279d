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
                    Prints one JSON line per run. Missed slots (the process was down) are caught up once,
                    for the latest one. With --once, exits 1 when a run failed (the failure is also in the log).
                    Examples:
                      audit schedule run --once
                      audit schedule run --config /etc/audit/audit.toml
                    """)

            @OptionGroup var global: GlobalOptions
            @OptionGroup var options: ConfigOptions
            @Flag(help: "Run whatever is due now, then exit (for cron or a systemd timer).") var once = false

            func run() throws {
                let scheduler = ExportScheduler(store: try openStore(global), config: try ScheduleConfig.load(file: options.config))
                if once {
                    let outcomes = try scheduler.runDue()
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
                abstract: "Show each scheduled export's schedule, last run and next run.",
                discussion: """
                    Example:
                      audit schedule list --format json
                    """)

            @OptionGroup var global: GlobalOptions
            @OptionGroup var options: ConfigOptions
            @Option(help: "table, csv, json or jsonl.") var format: OutputFormat = .table

            func run() throws {
                let scheduler = ExportScheduler(store: try openStore(global), config: try ScheduleConfig.load(file: options.config))
                var writer = try ResultWriter(
                    columns: ["name", "schedule", "timezone", "last_slot", "last_status", "due", "next_slot", "last_directory"], format: format)
                for s in try scheduler.status() {
                    try writer.row([
                        .text(s.name), .text(s.schedule.expression), .text(s.schedule.timeZoneName),
                        s.lastSlot.map { .text($0.description) } ?? .null, s.lastStatus.map(SQLValue.text) ?? .null,
                        s.dueSlot.map { .text($0.description) } ?? .null, s.nextSlot.map { .text($0.description) } ?? .null,
                        s.lastDirectory.map(SQLValue.text) ?? .null,
                    ])
                }
                try writer.finish()
            }
        }
    }
}
