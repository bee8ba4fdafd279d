import Foundation
import Testing

@testable import AuditEngine

/// Schedules across offset changes, against a reference that steps through every UTC
/// minute and applies Vixie cron's rules to the wall clock it reads there.
@Suite("Cron schedules across daylight-saving changes")
struct CronDaylightSavingTests {
    static let schedules = [
        "15 2 * * sun", "30 2 * * *", "0,30 2 * * *", "* 2 * * *", "*/20 2 * * *", "45 1 * * *", "0 0 * * *", "30 3 * * *",
        "59 23 * * *", "*/15 * * * *", "0 * * * *", "0 */2 * * *", "30 */3 * * *",
    ]

    /// Zones, the years searched for their offset changes, and how many there are in them
    /// (zones without any get windows of their own: a leap day, a new year).
    static let zones: [(zone: String, years: ClosedRange<Int>, changes: Int)] = [
        ("Europe/Berlin", 2024...2031, 16), ("America/New_York", 2024...2031, 16), ("Australia/Lord_Howe", 2024...2031, 16),
        ("Asia/Kathmandu", 1985...1986, 1), ("America/Sao_Paulo", 2017...2020, 5), ("Pacific/Apia", 2011...2012, 5),
        ("Europe/Moscow", 2014...2014, 1), ("Asia/Tokyo", 2024...2026, 0), ("UTC", 2024...2026, 0),
    ]

    @Test("slots equal a minute-by-minute reference around every offset change", arguments: zones.map(\.zone))
    func againstReference(zone: String) throws {
        let (_, years, changes) = try #require(Self.zones.first { $0.zone == zone })
        var reference = try Reference(zone: zone)
        var windows = reference.changes(in: years).map { ($0 - 36 * 3600, $0 + 36 * 3600) }
        #expect(windows.count == changes, "the offset changes of \(zone) in \(years)")
        if windows.isEmpty {
            windows = try [("2024-02-27T12:00:00Z", "2024-03-02T00:00:00Z"), ("2025-12-30T00:00:00Z", "2026-01-02T00:00:00Z")].map {
                (try Timestamp(rfc3339: $0.0).milliseconds / 1000, try Timestamp(rfc3339: $0.1).milliseconds / 1000)
            }
        }
        for expression in Self.schedules {
            let schedule = try CronSchedule(expression, timeZone: zone)
            for (from, to) in windows {
                let expected = reference.slots(schedule, from: from, to: to)
                var actual: [Int64] = []
                var cursor = Timestamp(milliseconds: from * 1000 - 1)
                while let next = schedule.next(after: cursor), next.milliseconds <= to * 1000 {
                    guard next > cursor else {
                        Issue.record("next(after: \(cursor)) is \(next), not after it")
                        break
                    }
                    actual.append(next.milliseconds / 1000)
                    cursor = next
                }
                let window = "\(expression) in \(zone) from \(Timestamp(milliseconds: from * 1000))"
                if actual != expected {
                    let i = (0..<min(actual.count, expected.count)).first { actual[$0] != expected[$0] } ?? min(actual.count, expected.count)
                    let at = { (slots: [Int64]) in i < slots.count ? Reference.text(slots[i]) : "none" }
                    Issue.record("next: \(window): slot \(i) is \(at(actual)), the reference says \(at(expected))")
                    continue
                }
                // The latest slot at or before an instant, at each slot, just before it and
                // every 7 minutes between.
                var probes = Set(stride(from: from, through: to, by: 7 * 60))
                for slot in expected { probes.formUnion([slot, slot - 1, slot + 59]) }
                for probe in probes.sorted() where probe >= from {
                    guard let latest = expected.last(where: { $0 <= probe }) else { continue }
                    let previous = schedule.previous(atOrBefore: Timestamp(milliseconds: probe * 1000 + 999))
                    if previous?.milliseconds != latest * 1000 {
                        Issue.record("previous(atOrBefore: \(Reference.text(probe))) is \(previous.map(\.description) ?? "nil"), not \(Reference.text(latest)): \(window)")
                        break
                    }
                }
            }
        }
    }

    struct Case: CustomStringConvertible, Sendable {
        var expression: String
        var zone: String
        var after: String
        var slots: [String]
        var description: String { "\(expression) in \(zone) after \(after)" }
    }

    @Test("the slots users ask about", arguments: [
        // The classic Sunday-2-am slot no longer skips a week at either change (Berlin, 2026).
        Case(expression: "15 2 * * sun", zone: "Europe/Berlin", after: "2026-03-21T12:00:00Z",
             slots: ["2026-03-22T01:15:00.000Z", "2026-03-29T01:00:00.000Z", "2026-04-05T00:15:00.000Z"]),
        Case(expression: "15 2 * * sun", zone: "Europe/Berlin", after: "2026-10-18T12:00:00Z",
             slots: ["2026-10-25T00:15:00.000Z", "2026-11-01T01:15:00.000Z"]),
        Case(expression: "30 2 * * 0", zone: "America/New_York", after: "2026-03-07T12:00:00Z",
             slots: ["2026-03-08T07:00:00.000Z", "2026-03-15T06:30:00.000Z"]),
        // Fixed hour in the repeated autumn hour: once, the first pass (CEST).
        Case(expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-10-24T12:00:00Z",
             slots: ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]),
        // Wildcard hour: both passes in autumn, none in the spring gap.
        Case(expression: "0 * * * *", zone: "Europe/Berlin", after: "2026-10-24T23:30:00Z",
             slots: ["2026-10-25T00:00:00.000Z", "2026-10-25T01:00:00.000Z", "2026-10-25T02:00:00.000Z"]),
        Case(expression: "*/30 * * * *", zone: "Europe/Berlin", after: "2026-03-29T00:00:00Z",
             slots: ["2026-03-29T00:30:00.000Z", "2026-03-29T01:00:00.000Z"]),
        // Lord Howe moves by 30 minutes: 02:00 → 02:30 in October.
        Case(expression: "15 2 * * *", zone: "Australia/Lord_Howe", after: "2026-10-03T12:00:00Z",
             slots: ["2026-10-03T15:30:00.000Z", "2026-10-04T15:15:00.000Z"]),
        // Apia skipped 2011-12-30 entirely: a daily slot runs when the clock jumps past it.
        Case(expression: "0 12 * * *", zone: "Pacific/Apia", after: "2011-12-29T00:00:00Z",
             slots: ["2011-12-29T22:00:00.000Z", "2011-12-30T10:00:00.000Z", "2011-12-30T22:00:00.000Z"]),
    ])
    func named(c: Case) throws {
        let schedule = try CronSchedule(c.expression, timeZone: c.zone)
        var cursor = try Timestamp(rfc3339: c.after)
        var slots: [String] = []
        for _ in c.slots {
            guard let next = schedule.next(after: cursor) else { break }
            slots.append(next.description)
            cursor = next
        }
        #expect(slots == c.slots)
    }
}

/// Vixie cron's rules applied minute by minute: at each UTC minute, the wall clock is read
/// from Foundation's offset for that minute. A fixed-hour schedule fires when the clock
/// first reaches (or jumps past) a matching time it had not reached before; one whose hour
/// field starts with `*` fires whenever the clock shows a matching time.
struct Reference {
    let zone: TimeZone
    let calendar: Calendar
    private var days: [Int64: (day: Int, month: Int, weekday: Int)] = [:]

    init(zone identifier: String) throws {
        zone = try #require(TimeZone(identifier: identifier))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        self.calendar = calendar
    }

    static func text(_ seconds: Int64) -> String { Timestamp(milliseconds: seconds * 1000).description }

    func offset(_ instant: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))) }

    /// Instants (to the minute) where the offset differs from the minute before, found by
    /// comparing hour by hour and then minute by minute.
    func changes(in years: ClosedRange<Int>) -> [Int64] {
        let start = Timestamp.daysFromCivil(Int64(years.lowerBound), 1, 1) * 86_400
        let end = Timestamp.daysFromCivil(Int64(years.upperBound) + 1, 1, 1) * 86_400
        var found: [Int64] = []
        for hour in stride(from: start, to: end, by: 3600) where offset(hour) != offset(hour + 3600) {
            found.append(stride(from: hour + 60, through: hour + 3600, by: 60).first { offset($0) != offset($0 - 60) }!)
        }
        return found
    }

    /// The slots in [from, to], seconds since 1970.
    mutating func slots(_ schedule: CronSchedule, from: Int64, to: Int64) -> [Int64] {
        var slots: [Int64] = []
        // Start three days early, so that the highest time reached is known at `from`.
        var t = (from / 60) * 60 - 3 * 86_400
        var highest = t - 60 + offset(t - 60)
        while t <= to {
            let wall = t + offset(t)
            var fires: Bool
            // Vixie's "wildcard" schedules, read from the text: the hour field starts with `*`.
            if schedule.expression.split(separator: " ")[1].hasPrefix("*") {
                fires = matches(schedule, wallMinute: wall / 60)
            } else {
                fires = false
                var minute = highest / 60 + 1
                while minute <= wall / 60, !fires {
                    fires = matches(schedule, wallMinute: minute)
                    minute += 1
                }
            }
            if fires, t >= from { slots.append(t) }
            highest = max(highest, wall)
            t += 60
        }
        return slots
    }

    mutating func matches(_ s: CronSchedule, wallMinute: Int64) -> Bool {
        let dayNumber = wallMinute / 1440, minuteOfDay = Int(wallMinute % 1440)
        guard s.minutes.contains(minuteOfDay % 60), s.hours.contains(minuteOfDay / 60) else { return false }
        let day = self.day(dayNumber)
        guard s.months.contains(day.month) else { return false }
        let byMonth = s.daysOfMonth.contains(day.day), byWeek = s.daysOfWeek.contains(day.weekday)
        switch (s.dayOfMonthRestricted, s.dayOfWeekRestricted) {
        case (true, true): return byMonth || byWeek
        case (true, false): return byMonth
        case (false, true): return byWeek
        case (false, false): return true
        }
    }

    /// Day of month, month and weekday (0 = Sunday) of a day since 1970, from Foundation's calendar.
    private mutating func day(_ number: Int64) -> (day: Int, month: Int, weekday: Int) {
        if let known = days[number] { return known }
        let c = calendar.dateComponents([.day, .month, .weekday], from: Date(timeIntervalSince1970: TimeInterval(number * 86_400)))
        let value = (c.day!, c.month!, c.weekday! - 1)
        days[number] = value
        return value
    }
}
