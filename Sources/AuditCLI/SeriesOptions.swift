import ArgumentParser
import AuditEngine

extension SeriesPoints.Unit: ExpressibleByArgument {}

/// `--as-of-each UNIT` or `--known-at-each UNIT`, with `--from` and `--to`: a question
/// at the last instant of every day, week, month, quarter or year in a range (UTC).
struct SeriesOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "A series: the question as of the end of each day, week, month, quarter or year (UTC) from --from to --to.",
        valueName: "unit"))
    var asOfEach: SeriesPoints.Unit?

    @Option(help: ArgumentHelp(
        "A series as reported at the time: at the end of each unit, as of it and known at it.", valueName: "unit"))
    var knownAtEach: SeriesPoints.Unit?

    @Option(help: ArgumentHelp("The series' first time: \(TimeArgument.selectingForms).", valueName: "time"), transform: TimeArgument.selecting)
    var from: Timestamp?

    @Option(help: ArgumentHelp("The series' last time: \(TimeArgument.selectingForms).", valueName: "time"), transform: TimeArgument.selecting)
    var to: Timestamp?

    var isSeries: Bool { asOfEach != nil || knownAtEach != nil }

    func validate() throws {
        if asOfEach != nil, knownAtEach != nil { throw ValidationError("give --as-of-each or --known-at-each, not both") }
        if isSeries {
            guard let from, let to else { throw ValidationError("a series needs --from and --to") }
            if to < from { throw ValidationError("--to is before --from") }
        } else if from != nil || to != nil {
            throw ValidationError("--from and --to go with --as-of-each or --known-at-each")
        }
    }

    /// The series, checked against the command's --as-of/--known-at; nil without one.
    func points(_ time: TimeOptions) throws -> SeriesPoints? {
        guard let unit = asOfEach ?? knownAtEach, let from, let to else { return nil }
        if time.asOf != nil { throw ValidationError("--as-of gives one point in time; a series gives its own (--as-of-each/--known-at-each)") }
        if knownAtEach != nil, time.knownAt != nil {
            throw ValidationError("--known-at-each is known at each point; drop --known-at (or use --as-of-each with --known-at)")
        }
        let series = SeriesPoints(unit: unit, from: from, to: to, knownAtEach: knownAtEach != nil, knownAt: time.knownAt)
        let count = series.boundaries.count
        if count > SeriesPoints.maximumPoints {
            throw ValidationError("the series has \(count) points, more than \(SeriesPoints.maximumPoints): narrow --from/--to or take a longer unit")
        }
        return series
    }
}
