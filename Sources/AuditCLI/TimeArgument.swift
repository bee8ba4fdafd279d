import ArgumentParser
import AuditEngine

/// A time on the command line: RFC 3339, or a date meaning the end of that day, UTC.
extension Timestamp: ExpressibleByArgument {
    public init?(argument: String) {
        guard let parsed = try? Timestamp(dateOrTime: argument) else { return nil }
        self = parsed
    }
}

/// The `--as-of` / `--known-at` pair of CONTRACT §4.
struct TimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Only events that occurred at or before this time (business time). RFC 3339 or YYYY-MM-DD (end of that day, UTC).", valueName: "time"))
    var asOf: Timestamp?

    @Option(help: ArgumentHelp("Only events recorded at or before this time (system time: what the log held then).", valueName: "time"))
    var knownAt: Timestamp?
}

extension TimeOptions {
    var selection: TemporalSelection { TemporalSelection(asOf: asOf, knownAt: knownAt) }
}
