import Foundation
import Testing

@testable import AuditEngine

@Suite("Cron schedules")
struct CronScheduleTests {
    func t(_ text: String) -> Timestamp { try! Timestamp(rfc3339: text) }

    struct Case: CustomStringConvertible, Sendable {
        var expression: String
        var zone: String = "UTC"
        var after: String
        var next: String
        var description: String { "\(expression) in \(zone) after \(after)" }
    }

    @Test("next slot", arguments: [
        Case(expression: "0 2 * * *", after: "2024-06-30T01:59:59Z", next: "2024-06-30T02:00:00.000Z"),
        Case(expression: "0 2 * * *", after: "2024-06-30T02:00:00Z", next: "2024-07-01T02:00:00.000Z"),
        Case(expression: "*/15 * * * *", after: "2024-06-30T10:07:00Z", next: "2024-06-30T10:15:00.000Z"),
        Case(expression: "30 9 * * mon-fri", after: "2024-06-28T10:00:00Z", next: "2024-07-01T09:30:00.000Z"),  // Fri → Mon
        Case(expression: "0 0 1 jan,jul *", after: "2024-02-10T00:00:00Z", next: "2024-07-01T00:00:00.000Z"),
        Case(expression: "0 0 29 2 *", after: "2024-03-01T00:00:00Z", next: "2028-02-29T00:00:00.000Z"),
        Case(expression: "0 12 13 * 5", after: "2024-06-01T00:00:00Z", next: "2024-06-07T12:00:00.000Z"),  // day 13 OR Friday
        Case(expression: "0 0 * * 7", after: "2024-06-30T00:00:00Z", next: "2024-07-07T00:00:00.000Z"),  // 7 = Sunday
        Case(expression: "@daily", after: "2024-06-30T12:00:00Z", next: "2024-07-01T00:00:00.000Z"),
        Case(expression: "0 2 * * *", zone: "Europe/Berlin", after: "2024-06-30T00:00:00Z", next: "2024-07-01T00:00:00.000Z"),
        // Spring forward in Berlin (2024-03-31 02:00 → 03:00): 02:30 does not exist that day,
        // so it fires when the clock jumps past it, at 03:00 CEST.
        Case(expression: "30 2 * * *", zone: "Europe/Berlin", after: "2024-03-30T02:00:00Z", next: "2024-03-31T01:00:00.000Z"),
        // Fall back (2024-10-27 03:00 → 02:00): 02:30 happens twice and fires once, the first time.
        Case(expression: "30 2 * * *", zone: "Europe/Berlin", after: "2024-10-26T23:00:00Z", next: "2024-10-27T00:30:00.000Z"),
        Case(expression: "30 2 * * *", zone: "Europe/Berlin", after: "2024-10-27T00:30:00Z", next: "2024-10-28T01:30:00.000Z"),
    ])
    func next(c: Case) throws {
        let schedule = try CronSchedule(c.expression, timeZone: c.zone)
        #expect(schedule.next(after: t(c.after))?.description == c.next)
    }

    @Test("the previous slot is the latest at or before a time, and next(previous) walks forward consistently")
    func previous() throws {
        let schedule = try CronSchedule("15 */6 * * *", timeZone: "America/New_York")
        let now = t("2024-11-03T12:00:00Z")
        let p = try #require(schedule.previous(atOrBefore: now))
        #expect(p <= now && schedule.next(after: p)! > now)
        #expect(schedule.previous(atOrBefore: p) == p)
        var slot = t("2024-01-01T00:00:00Z")
        for _ in 0..<500 {
            let next = try #require(schedule.next(after: slot))
            #expect(schedule.previous(atOrBefore: Timestamp(milliseconds: next.milliseconds + 59_000)) == next)
            slot = next
        }
    }

    @Test("bad schedules name the field", arguments: [
        ("0 2 * *", "5 fields"), ("60 * * * *", "minute field \"60\": 60 is outside 0–59"), ("* * * foo *", "month field"),
        ("*/0 * * * *", "step"), ("5-1 * * * *", "runs backwards"), ("0 0 * * *|Mars/Olympus", "unknown time zone"),
        ("0 0 * * *|GMT+2", "unknown time zone"), ("0 0 * * *|UTC+3", "unknown time zone"), ("0 0 * * *|../../etc/passwd", "unknown time zone"),
        ("0 0 * * *|Europe", "unknown time zone"),
    ])
    func errors(input: String, message: String) {
        let parts = input.split(separator: "|").map(String.init)
        #expect {
            try CronSchedule(parts[0], timeZone: parts.count > 1 ? parts[1] : "UTC")
        } throws: { error in
            (error as? CronError)?.description.contains(message) == true
        }
    }

    @Test("a time zone is a tz database name: Etc/GMT+2 is two hours west of UTC (as POSIX has it), Europe/Berlin and UTC are taken")
    func zoneNames() throws {
        let west = try CronSchedule("0 2 * * *", timeZone: "Etc/GMT+2")
        let after = try Timestamp(rfc3339: "2024-06-29T12:00:00Z")
        #expect(west.next(after: after)?.description == "2024-06-30T04:00:00.000Z")
        #expect(try CronSchedule("0 2 * * *", timeZone: "Europe/Berlin").next(after: after)?.description == "2024-06-30T00:00:00.000Z")
        #expect(try CronSchedule("0 2 * * *", timeZone: "UTC").next(after: after)?.description == "2024-06-30T02:00:00.000Z")
    }
}
