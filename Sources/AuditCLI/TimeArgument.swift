import ArgumentParser
import AuditEngine

/// Every time given on the command line is read here, so that each option gives the
/// engine's reason and the accepted forms in the same words (DECISIONS 18).
///
/// Options that select events (`--as-of`, `--known-at`, `--from`, `--to`) read with
/// `@Option(…, transform: TimeArgument.selecting)`: a bad value is a usage error, exit
/// 64, which ArgumentParser reports as "The value 'X' is invalid for '--as-of <time>':
/// REASON; accepted: FORMS". Event content (`--occurred-at`) reads with
/// `TimeArgument.eventTime`: the same text, exit 65.
enum TimeArgument {
    /// What a selecting option accepts, for its help and its errors.
    static let selectingForms =
        "RFC 3339 with a zone (2024-06-30T12:00:00Z, 2024-06-30T14:00:00+02:00) or a date 2024-06-30 (the end of that day, UTC)"

    /// What an event time accepts.
    static let eventForms = "RFC 3339 with a zone (2024-06-30T12:00:00Z, 2024-06-30T14:00:00+02:00)"

    /// Reads the value of an option that selects events: RFC 3339, or a date meaning the
    /// end of that day in UTC.
    /// - Throws: `Invalid`, which ArgumentParser turns into a usage error (exit 64).
    @Sendable static func selecting(_ text: String) throws -> Timestamp {
        do {
            return try Timestamp(dateOrTime: text)
        } catch {
            throw Invalid(reason: reason(error, text), forms: selectingForms)
        }
    }

    /// Reads an event's time given as an option (`--occurred-at`): RFC 3339 only.
    /// - Throws: `InvalidEventTime`, invalid input (exit 65), in the words of `selecting`.
    static func eventTime(_ text: String, option: String) throws -> Timestamp {
        do {
            return try Timestamp(rfc3339: text)
        } catch {
            throw InvalidEventTime(option: option, value: text, problem: Invalid(reason: reason(error, text), forms: eventForms))
        }
    }

    /// The engine's reason, with a word on the forms people try that are never accepted.
    private static func reason(_ error: TimestampParseError, _ text: String) -> String {
        let bytes = Array(text.utf8)
        let startsWithYear = bytes.count >= 5 && bytes[0..<4].allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && bytes[4] == UInt8(ascii: "-")
        guard !startsWithYear else { return error.reason }
        if !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return error.reason + " (a number such as epoch seconds or 20240630 is not a time here)"
        }
        let relative = bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+")
            || bytes.contains { ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") }
        return relative ? error.reason + " (relative times such as now, yesterday or -7d are not accepted)" : error.reason
    }

    /// Why a time was refused and what would have been accepted.
    struct Invalid: Error, CustomStringConvertible {
        var reason: String
        var forms: String
        var description: String { "\(reason); accepted: \(forms)" }
    }

    /// A bad time in event content given as an option: invalid input, exit 65.
    struct InvalidEventTime: AuditFailure {
        var option: String
        var value: String
        var problem: Invalid
        var category: FailureCategory { .invalidInput }
        /// The text ArgumentParser gives a bad selecting time, so both read alike.
        var description: String { "The value '\(value)' is invalid for '\(option) <time>': \(problem)" }
    }
}

/// The `--as-of` / `--known-at` pair of CONTRACT §4.
struct TimeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Only events that occurred at or before this time (business time). \(TimeArgument.selectingForms).", valueName: "time"),
        transform: TimeArgument.selecting)
    var asOf: Timestamp?

    @Option(
        help: ArgumentHelp(
            "Only events recorded at or before this time (system time: what the log held then). \(TimeArgument.selectingForms).",
            valueName: "time"),
        transform: TimeArgument.selecting)
    var knownAt: Timestamp?
}

extension TimeOptions {
    var selection: TemporalSelection { TemporalSelection(asOf: asOf, knownAt: knownAt) }
}
