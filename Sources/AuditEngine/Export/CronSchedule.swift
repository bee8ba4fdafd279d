import Foundation

/// A standard 5-field cron schedule in a time zone: `minute hour day-of-month month day-of-week`.
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`;
/// months `jan`–`dec` and weekdays `sun`–`sat` by name, weekday 0 or 7 for Sunday. The
/// shortcuts `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
/// (`@annually`) are accepted. As in cron, when both day-of-month and day-of-week are
/// restricted, a day matching either one matches.
///
/// Times are wall-clock times in `timeZone`; a slot is an instant. Where the clock jumps
/// (daylight saving, a change of standard time), the rules are Vixie cron's:
///
/// - A schedule with a fixed hour (its hour field does not start with `*`) has one slot
///   per matching wall-clock time: a time the clock skips in spring (`30 2 * * *` on
///   the day Berlin goes from 02:00 to 03:00) fires at the first instant after the gap
///   (03:00), and a time the clock shows twice in autumn fires once, the first time.
///   Several skipped times fire once, together.
/// - A schedule whose hour field starts with `*` (`*/15 * * * *`, `0 * * * *`,
///   `0 */2 * * *`) follows the clock: its slots are the instants whose wall-clock time
///   matches, so a skipped time has no slot and a repeated one has two.
///
/// ```swift
/// let nightly = try CronSchedule("30 2 * * mon-fri", timeZone: "Europe/Berlin")
/// let next = nightly.next(after: .now())
/// ```
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    public let timeZone: TimeZone
    /// The zone's name as given ("UTC", "Europe/Berlin"; Foundation may report UTC as GMT).
    public let timeZoneName: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    /// Its hour field starts with `*`: slots follow the clock across offset changes.
    let followsClock: Bool
    let zone: ZoneOffsets

    public var description: String { "\(expression) (\(timeZoneName))" }

    /// - Throws: `CronError` naming the field and what is wrong with it.
    public init(_ expression: String, timeZone identifier: String = "UTC") throws {
        guard let zone = ZoneName.timeZone(identifier) else {
            throw CronError(expression: expression, message: "unknown time zone \"\(identifier)\" (use an IANA name such as UTC or Europe/Berlin)")
        }
        let shortcuts = [
            "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
        ]
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        let text = shortcuts[trimmed.lowercased()] ?? trimmed
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronError(expression: expression, message: "a schedule has 5 fields (minute hour day-of-month month day-of-week), not \(fields.count)")
        }
        func parse(_ index: Int, _ name: String, _ range: ClosedRange<Int>, names: [String] = []) throws -> Set<Int> {
            do {
                return try CronSchedule.field(fields[index], range: range, names: names)
            } catch let message as CronFieldError {
                throw CronError(expression: expression, message: "\(name) field \"\(fields[index])\": \(message.text)")
            }
        }
        self.expression = trimmed
        timeZone = zone
        timeZoneName = identifier
        minutes = try parse(0, "minute", 0...59)
        hours = try parse(1, "hour", 0...23)
        daysOfMonth = try parse(2, "day-of-month", 1...31)
        months = try parse(3, "month", 1...12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
        var weekdays = try parse(4, "day-of-week", 0...7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
        if weekdays.remove(7) != nil { weekdays.insert(0) }
        daysOfWeek = weekdays
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
        followsClock = fields[1].hasPrefix("*")
        self.zone = ZoneOffsets(zone: zone)
    }

    public static func == (a: CronSchedule, b: CronSchedule) -> Bool {
        a.expression == b.expression && a.timeZoneName == b.timeZoneName
    }

    private struct CronFieldError: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }

    private static func field(_ text: String, range: ClosedRange<Int>, names: [String]) throws -> Set<Int> {
        func value(_ token: Substring) throws -> Int {
            if let n = Int(token) {
                guard range.contains(n) else { throw CronFieldError(text: "\(n) is outside \(range.lowerBound)–\(range.upperBound)") }
                return n
            }
            if let index = names.firstIndex(of: token.lowercased()) { return index + (range.lowerBound == 1 ? 1 : 0) }
            throw CronFieldError(text: "\"\(token)\" is not a number\(names.isEmpty ? "" : " or a name (\(names.first!)…\(names.last!))")")
        }
        var result: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw CronFieldError(text: "an empty list element") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw CronFieldError(text: "more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n >= 1 else { throw CronFieldError(text: "the step after '/' must be a number 1 or more") }
                step = n
            }
            let base = pieces[0]
            var low = range.lowerBound, high = range.upperBound
            if base == "*" {
                if range.upperBound == 7 { high = 6 }  // day-of-week: * is 0–6
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw CronFieldError(text: "the range \(base) runs backwards") }
            } else {
                low = try value(base)
                high = pieces.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    /// The first slot strictly after `time`, or nil when there is none within 8 years
    /// (`0 0 30 2 *`).
    public func next(after time: Timestamp) -> Timestamp? {
        let after = Self.seconds(time)
        let limit = after + Self.horizon
        if followsClock {
            // Span by span of one offset: the first instant whose wall-clock time matches.
            var start = after + 1
            while start < limit {
                let offset = zone.offset(at: start)
                let end = zone.nextChange(after: start, before: limit) ?? limit
                let from = Self.minute(ceilingOf: start + offset), to = Self.minute(ceilingOf: end + offset)
                if let match = search(from: from, forward: true, limit: to) { return Self.timestamp(match * 60 - offset) }
                start = end
            }
            return nil
        }
        // Every wall-clock time the clock has reached by `time` has had its slot.
        let reached = zone.highestWall(atOrBefore: after)
        let from = Self.minute(floorOf: reached) + 1
        guard let match = search(from: from, forward: true, limit: from + Self.horizon / 60) else { return nil }
        return Self.timestamp(zone.firstInstant(reaching: match * 60))
    }

    /// The last slot at or before `time`, or nil when there was none within 8 years.
    public func previous(atOrBefore time: Timestamp) -> Timestamp? {
        let until = Self.seconds(time)
        let limit = until - Self.horizon
        if followsClock {
            var end = until
            while end > limit {
                let offset = zone.offset(at: end)
                let start = zone.lastChange(atOrBefore: end, after: max(limit, end - 400 * 86_400)) ?? max(limit, end - 400 * 86_400)
                let from = Self.minute(floorOf: end + offset), to = Self.minute(ceilingOf: start + offset)
                if let match = search(from: from, forward: false, limit: to - 1) { return Self.timestamp(match * 60 - offset) }
                end = start - 1
            }
            return nil
        }
        let reached = zone.highestWall(atOrBefore: until)
        let from = Self.minute(floorOf: reached)
        guard let match = search(from: from, forward: false, limit: from - Self.horizon / 60) else { return nil }
        return Self.timestamp(zone.firstInstant(reaching: match * 60))
    }

    /// `time` as the schedule's zone shows it, with its offset: `2026-03-29T03:00:00.000+02:00`.
    package func localTime(_ time: Timestamp) -> String {
        let offset = zone.offset(at: Self.seconds(time))
        let wall = Timestamp(milliseconds: time.milliseconds + offset * 1000).description.dropLast()
        let size = abs(offset)
        let seconds = size % 60 == 0 ? "" : ":" + Self.twoDigits(size % 60)
        return wall + (offset < 0 ? "-" : "+") + Self.twoDigits(size / 3600) + ":" + Self.twoDigits(size / 60 % 60) + seconds
    }

    private static func twoDigits(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// How far `next` and `previous` look: 8 years, in seconds.
    private static let horizon: Int64 = 8 * 366 * 86_400

    /// The whole second at or before `time`: a slot (whole seconds) is after `time` when it
    /// is after this second, and at or before it when it is at or before this second.
    private static func seconds(_ time: Timestamp) -> Int64 {
        time.milliseconds >= 0 ? time.milliseconds / 1000 : (time.milliseconds - 999) / 1000
    }

    private static func timestamp(_ seconds: Int64) -> Timestamp { Timestamp(milliseconds: seconds * 1000) }

    private static func minute(floorOf seconds: Int64) -> Int64 { seconds >= 0 ? seconds / 60 : (seconds - 59) / 60 }

    private static func minute(ceilingOf seconds: Int64) -> Int64 { -minute(floorOf: -seconds) }

    /// The nearest wall-clock minute from `start` (inclusive) in the search direction
    /// that matches every field, jumping whole months, days and hours that do not.
    private func search(from start: Int64, forward: Bool, limit: Int64) -> Int64? {
        var m = start
        while forward ? m < limit : m > limit {
            let days = Int64((Double(m) / 1440).rounded(.down))
            let (y, mo, d) = Timestamp.civilFromDays(days)
            let minuteOfDay = m - days * 1440
            let hour = Int(minuteOfDay / 60), minute = Int(minuteOfDay % 60)
            if !months.contains(Int(mo)) {
                let first = Timestamp.daysFromCivil(y, mo, 1)
                m = forward ? Timestamp.daysFromCivil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) * 1440 : first * 1440 - 1
            } else if !dayMatches(days: days, day: Int(d)) {
                m = forward ? (days + 1) * 1440 : days * 1440 - 1
            } else if !hours.contains(hour) {
                m = forward ? days * 1440 + Int64(hour + 1) * 60 : days * 1440 + Int64(hour) * 60 - 1
            } else if !minutes.contains(minute) {
                m += forward ? 1 : -1
            } else {
                return m
            }
        }
        return nil
    }

    private func dayMatches(days: Int64, day: Int) -> Bool {
        let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
        let byMonth = daysOfMonth.contains(day), byWeek = daysOfWeek.contains(weekday)
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return byMonth || byWeek
        case (true, false): return byMonth
        case (false, true): return byWeek
        case (false, false): return true
        }
    }
}

/// A schedule that cannot be read.
public struct CronError: AuditFailure, Equatable {
    public var expression: String
    public var message: String
    public var category: FailureCategory { .invalidInput }
    public var description: String { "schedule \"\(expression)\": \(message)" }
}
