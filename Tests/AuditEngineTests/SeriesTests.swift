import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// A series answers, in one pass, exactly what a separate question gives at each of its
/// points: over random logs whose late (and future-dated) events cross both the points
/// and the snapshots' seqs, for projections of every key kind.
@Suite("Series: one pass equals separate questions")
struct SeriesTests {
    static let start = try! Timestamp(rfc3339: "2024-01-01T00:00:00Z").milliseconds

    /// An order log of `count` events ten minutes apart in seq order, except that about
    /// one in four occurred earlier than its neighbours (up to `lateness` minutes: late
    /// news, crossing several points) and one in twenty later (up to a day: recorded
    /// before it happened).
    static func log(count: Int, streams: Int, seed: UInt64, lateness: Int64) -> [String] {
        var rng = SplitMix64(seed: seed &* 31)
        return orderLog(count: count, streams: streams, seed: seed).enumerated().map { i, line in
            var minutes = Int64(i) * 10
            switch rng.next() % 20 {
            case 0..<5: minutes -= Int64(rng.next() % UInt64(lateness))
            case 5: minutes += Int64(rng.next() % 1440)
            default: break
            }
            let occurred = Timestamp(milliseconds: start + minutes * 60_000).description
            return "{\"occurred_at\":\"\(occurred)\"," + line.dropFirst()
        }
    }

    /// `count` random points in the log's time range, ascending (with repeats).
    static func points(_ count: Int, seed: UInt64, span minutes: Int64) -> [Timestamp] {
        var rng = SplitMix64(seed: seed &* 977)
        return (0..<count).map { _ in Timestamp(milliseconds: start + Int64(rng.next() % UInt64(minutes * 60_000))) }.sorted()
    }

    /// Each projection's states at each point: in one pass, and by separate questions.
    static func states(_ w: Workspace, _ points: [TemporalSelection], snapshots: Bool, parallel: Int) throws
        -> (series: [String: [[String]]], separate: [String: [[String]]])
    {
        var options = TemporalOptions()
        options.useSnapshots = snapshots
        options.parallel = parallel
        var series: [String: [[String]]] = [:]
        var separate: [String: [[String]]] = [:]
        for name in TemporalTests.names {
            let projection = try w.load(name)
            var lines = Array(repeating: [String](), count: points.count)
            try w.store.forEachStateBytes(projection, at: points, options: options) { point, key, state in
                lines[point].append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
            }
            series[name] = lines
            separate[name] = try points.map { point in
                var lines: [String] = []
                try w.store.forEachState(projection, at: point, options: options) { lines.append("\($0) \($1)") }
                return lines
            }
        }
        return (series, separate)
    }

    /// The first point where the one pass and the separate questions differ, shown short.
    static func difference(_ series: [[String]], _ separate: [[String]]) -> String? {
        guard series.count == separate.count else { return "\(series.count) points, not \(separate.count)" }
        for (point, (a, b)) in zip(series, separate).enumerated() where a != b {
            let line = zip(a, b).first { $0 != $1 }.map { "one pass \($0), separately \($1)" } ?? "\(a.count) states, not \(b.count)"
            return "point \(point): \(line)"
        }
        return nil
    }

    @Test(
        "as-of series over random points equal separate --as-of questions, late events crossing points and snapshots, with and without snapshots, sequential and parallel",
        arguments: [UInt64(1), 2, 3, 4])
    func asOfSeries(seed: UInt64) throws {
        let count = 600 + Int(seed) * 50
        let w = try TemporalTests.built(Self.log(count: count, streams: 40 + Int(seed) * 7, seed: seed, lateness: 3000), parallel: 1)
        let snapshots = try w.store.readTransaction { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM snapshots")! }
        #expect(snapshots >= 6, "the test must exercise snapshots")
        let points = Self.points(9, seed: seed, span: Int64(count) * 10 + 1440).map { TemporalSelection(asOf: $0) }
        for (useSnapshots, parallel) in [(true, 1), (false, 1), (true, 2), (false, 2)] {
            let (series, separate) = try Self.states(w, points, snapshots: useSnapshots, parallel: parallel)
            for name in TemporalTests.names {
                #expect(Self.difference(series[name]!, separate[name]!) == nil, "\(name), snapshots \(useSnapshots), parallel \(parallel)")
            }
        }
        // The late events did cross points: some projection keyed by stream was refolded.
        #expect(try Self.refolds(w, points) > 0)
    }

    /// How many streams of order_totals the one pass folded again at later points.
    static func refolds(_ w: Workspace, _ points: [TemporalSelection]) throws -> Int {
        let states = try TemporaryStates(storePath: w.store.path)
        let ends = try states.readStates { db in try SelectedRange.ends(points, db) }
        let fold = try PointFold(
            store: w.store, states: states, projections: [try w.load("order_totals")], first: points[0], end: ends[0], more: true,
            options: TemporalOptions())
        for (point, end) in zip(points, ends) { try fold.advance(to: point, end: end) }
        return fold.refoldedStreams
    }

    @Test("a series at known-at times as well (fixed, and each point's own) equals separate questions", arguments: [UInt64(5), 6])
    func knownAtSeries(seed: UInt64) throws {
        let w = try TemporalTests.built(Self.log(count: 700, streams: 50, seed: seed, lateness: 2000), parallel: 1)
        var recorded: [Timestamp] = []
        try w.store.forEachEvent { recorded.append($0.recordedAt) }
        let known = recorded[recorded.count / 2]
        let asOf = Self.points(6, seed: seed, span: 8000)
        // Fixed known-at; and each point known at a time of the log (a diagonal on the
        // recording clock, with the as-of times walking alongside).
        let fixed = asOf.map { TemporalSelection(asOf: $0, knownAt: known) }
        let step = recorded.count / 7
        let walking = asOf.enumerated().map { TemporalSelection(asOf: $1, knownAt: recorded[($0 + 1) * step]) }
        for points in [fixed, walking] {
            for parallel in [1, 2] {
                let (series, separate) = try Self.states(w, points, snapshots: true, parallel: parallel)
                for name in TemporalTests.names { #expect(Self.difference(series[name]!, separate[name]!) == nil, "\(name), parallel \(parallel)") }
            }
        }
    }

    @Test("a series known at each point (diagonal) equals separate questions, with events recorded before they occurred")
    func diagonalSeries() throws {
        let w = try TemporalTests.workspace()
        // Chunks a few milliseconds apart, each occurring around its recording: some late
        // (occurred chunks ago), some future-dated (occur chunks later: not yet selected
        // at the points in between, though already recorded).
        var rng = SplitMix64(seed: 12)
        let log = orderLog(count: 480, streams: 30, seed: 12)
        var options = ReplayOptions()
        options.batchSize = 17
        for (n, chunk) in stride(from: 0, to: log.count, by: 40).enumerated() {
            let now = Timestamp.now().milliseconds
            try w.ingest(log[chunk..<min(chunk + 40, log.count)].map { line in
                var offset = Int64(rng.next() % 5)
                switch rng.next() % 10 {
                case 0, 1: offset -= Int64(rng.next() % 60)
                case 2: offset += Int64(rng.next() % 60)
                default: break
                }
                return "{\"occurred_at\":\"\(Timestamp(milliseconds: now + offset).description)\"," + line.dropFirst()
            })
            if n % 3 == 0 { try w.replay(TemporalTests.names, options) }
            usleep(6_000)
        }
        var recorded: [Timestamp] = []
        try w.store.forEachEvent { recorded.append($0.recordedAt) }
        let first = recorded.first!.milliseconds, span = recorded.last!.milliseconds + 80 - first
        let points = (0..<10).map { _ in Timestamp(milliseconds: first + Int64(rng.next() % UInt64(span))) }.sorted()
            .map { TemporalSelection(asOf: $0, knownAt: $0) }
        for (snapshots, parallel) in [(true, 1), (false, 2)] {
            let (series, separate) = try Self.states(w, points, snapshots: snapshots, parallel: parallel)
            for name in TemporalTests.names { #expect(Self.difference(series[name]!, separate[name]!) == nil, "\(name), parallel \(parallel)") }
        }
    }

    @Test("a query series gives, per point, the rows of a separate temporal query, with events as they were")
    func querySeries() throws {
        let w = try TemporalTests.built(Self.log(count: 500, streams: 30, seed: 8, lateness: 2500), parallel: 1)
        let projections = try TemporalTests.names.map { try w.load($0) }
        let sql = """
            SELECT (SELECT count(*) FROM order_totals) AS orders, (SELECT sum(total) FROM order_totals WHERE status = 'open') AS open,
                   (SELECT group_concat(key || '=' || orders) FROM (SELECT key, json_extract(state, '$.orders') AS orders FROM by_customer ORDER BY key)) AS customers,
                   (SELECT state FROM totals) AS totals, (SELECT count(*) FROM events) AS events
            """
        let points = Self.points(7, seed: 8, span: 6500).map { TemporalSelection(asOf: $0) }
        for parallel in [1, 2] {
            var options = TemporalOptions()
            options.parallel = parallel
            var series = Array(repeating: [[SQLValue]](), count: points.count)
            try w.store.query(
                sql: sql, parameters: [:], source: "--sql", at: points, projections: projections, options: options, header: { _ in },
                row: { series[$0].append($1) })
            for (i, point) in points.enumerated() {
                var rows: [[SQLValue]] = []
                try w.store.query(sql: sql, at: point, projections: projections, options: options, header: { _ in }, row: { rows.append($0) })
                #expect(series[i] == rows, "point \(i), parallel \(parallel)")
            }
        }
    }

    @Test("boundaries are the last millisecond of each unit in UTC, inclusive of both ends; weeks end on Sunday")
    func boundaries() throws {
        func ends(_ unit: SeriesPoints.Unit, _ from: String, _ to: String) throws -> [String] {
            SeriesPoints(unit: unit, from: try Timestamp(rfc3339: from), to: try Timestamp(rfc3339: to)).boundaries.map(\.description)
        }
        #expect(try ends(.day, "2024-02-28T12:00:00Z", "2024-03-01T23:59:59.999Z")
            == ["2024-02-28T23:59:59.999Z", "2024-02-29T23:59:59.999Z", "2024-03-01T23:59:59.999Z"])
        // 2024-01-07 and 2024-01-14 are Sundays; the range ends a millisecond before the second.
        #expect(try ends(.week, "2024-01-01T00:00:00Z", "2024-01-14T23:59:59.998Z") == ["2024-01-07T23:59:59.999Z"])
        #expect(try ends(.month, "2023-12-31T23:59:59.999Z", "2024-03-15T00:00:00Z")
            == ["2023-12-31T23:59:59.999Z", "2024-01-31T23:59:59.999Z", "2024-02-29T23:59:59.999Z"])
        #expect(try ends(.quarter, "2024-01-01T00:00:00Z", "2024-12-31T23:59:59.999Z")
            == ["2024-03-31T23:59:59.999Z", "2024-06-30T23:59:59.999Z", "2024-09-30T23:59:59.999Z", "2024-12-31T23:59:59.999Z"])
        #expect(try ends(.year, "1969-06-01T00:00:00Z", "1971-01-01T00:00:00Z") == ["1969-12-31T23:59:59.999Z", "1970-12-31T23:59:59.999Z"])
        #expect(try ends(.day, "2024-01-01T00:00:00Z", "2024-01-01T23:59:59.998Z").isEmpty)
        // Known at each point: the diagonal.
        let diagonal = SeriesPoints(unit: .day, from: try Timestamp(rfc3339: "2024-01-01T00:00:00Z"), to: try Timestamp(rfc3339: "2024-01-02T23:59:59.999Z"), knownAtEach: true)
        #expect(diagonal.selections.allSatisfy { $0.asOf == $0.knownAt })
    }
}
