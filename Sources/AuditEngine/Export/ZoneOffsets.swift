import Foundation

/// A time zone's offsets from UTC, in whole seconds, for schedule arithmetic: the wall
/// clock at an instant, and where the offset changes (daylight saving, or a change of
/// standard time such as Europe/Moscow's in 2014 or Pacific/Apia's skipped day in 2011).
///
/// Instants and wall-clock times are seconds since 1970-01-01T00:00; a wall-clock time
/// is the instant's UTC reading plus the offset in force.
struct ZoneOffsets: Sendable {
    let zone: TimeZone

    /// The offset in force at `instant`.
    func offset(at instant: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    func wall(at instant: Int64) -> Int64 { instant + offset(at: instant) }

    /// The first instant after `instant` at which the offset changes (the new offset is in
    /// force from it on), or nil when it does not change before `limit`.
    func nextChange(after instant: Int64, before limit: Int64) -> Int64? {
        var from = instant
        while from < limit, let date = zone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: TimeInterval(from))) {
            let change = Int64(date.timeIntervalSince1970.rounded())
            guard change > from, change < limit else { return nil }
            // Foundation also reports changes that keep the total offset (standard time and
            // daylight saving trading places); they are no change of the wall clock.
            if offset(at: change - 1) != offset(at: change) { return change }
            from = change
        }
        return nil
    }

    /// The last instant at or before `instant` at which the offset changed, or nil when
    /// it did not after `limit`.
    func lastChange(atOrBefore instant: Int64, after limit: Int64) -> Int64? {
        var last: Int64?
        var from = limit
        while let change = nextChange(after: from, before: instant + 1) {
            last = change
            from = change
        }
        return last
    }

    /// The latest wall-clock time the clock has shown at or before `instant`: its own
    /// reading, unless the clock was set back within the last two days and has not yet
    /// caught up with where it stood before (the second pass of a repeated hour).
    func highestWall(atOrBefore instant: Int64) -> Int64 {
        var highest = wall(at: instant)
        var from = instant - 2 * 86_400
        while let change = nextChange(after: from, before: instant + 1) {
            highest = max(highest, wall(at: change - 1))
            from = change
        }
        return highest
    }

    /// The first instant at which the wall clock reads `wall` or later: the instant of
    /// that time, the first one when it occurs twice, and the instant the clock jumps
    /// past it when it does not occur (a spring-forward gap).
    func firstInstant(reaching wall: Int64) -> Int64 {
        // Before `wall - 36 h` the clock cannot have read `wall` yet: no offset is 36 hours.
        var start = wall - 36 * 3600
        while true {
            let offset = offset(at: start)
            guard let end = nextChange(after: start, before: wall - offset + 1) else { return max(start, wall - offset) }
            start = end
        }
    }
}
