/// The points of a series: the last instant of each day, week, month, quarter or year
/// (UTC) within a range, each a question as of it — and with `knownAtEach`, known at it
/// too (the series as it was reported at the time).
package struct SeriesPoints: Sendable, Equatable {
    package enum Unit: String, Sendable, CaseIterable {
        case day, week, month, quarter, year
    }

    package var unit: Unit
    package var from: Timestamp
    package var to: Timestamp
    /// Each point known at its own time (diagonal); false: known at `knownAt`, or now.
    package var knownAtEach: Bool
    /// With `knownAtEach` false: every point known at this time (nil: now).
    package var knownAt: Timestamp?

    /// The most points the command line takes in one series.
    package static let maximumPoints = 10_000

    package init(unit: Unit, from: Timestamp, to: Timestamp, knownAtEach: Bool = false, knownAt: Timestamp? = nil) {
        self.unit = unit
        self.from = from
        self.to = to
        self.knownAtEach = knownAtEach
        self.knownAt = knownAt
    }

    /// The boundaries within [from, to], ascending: each the last millisecond of its
    /// unit (`…T23:59:59.999Z`); weeks end on Sunday (ISO 8601).
    package var boundaries: [Timestamp] {
        var result: [Timestamp] = []
        var end = Self.end(of: unit, containing: from)
        while end.milliseconds <= to.milliseconds {
            if end.milliseconds >= from.milliseconds { result.append(end) }
            end = Self.end(of: unit, containing: Timestamp(milliseconds: end.milliseconds + 1))
        }
        return result
    }

    /// The questions, one per boundary.
    package var selections: [TemporalSelection] {
        boundaries.map { TemporalSelection(asOf: $0, knownAt: knownAtEach ? $0 : knownAt) }
    }

    /// The last millisecond of the `unit` that contains `time`.
    static func end(of unit: Unit, containing time: Timestamp) -> Timestamp {
        let day = Int64(86_400_000)
        let days = time.milliseconds >= 0 ? time.milliseconds / day : (time.milliseconds - day + 1) / day
        let (year, month, _) = Timestamp.civilFromDays(days)
        let next: Int64  // the first day after the unit
        switch unit {
        case .day: next = days + 1
        case .week:
            // 1970-01-01 was a Thursday: days + 3 counts from a Monday.
            let weekday = ((days + 3) % 7 + 7) % 7  // 0: Monday … 6: Sunday
            next = days + 7 - weekday
        case .month: next = month == 12 ? Timestamp.daysFromCivil(year + 1, 1, 1) : Timestamp.daysFromCivil(year, month + 1, 1)
        case .quarter:
            let firstMonthAfter = (month - 1) / 3 * 3 + 4
            next = firstMonthAfter > 12 ? Timestamp.daysFromCivil(year + 1, 1, 1) : Timestamp.daysFromCivil(year, firstMonthAfter, 1)
        case .year: next = Timestamp.daysFromCivil(year + 1, 1, 1)
        }
        return Timestamp(milliseconds: next * day - 1)
    }
}
