import Testing

@testable import AuditEngine

/// A question's fold keeps the states it changed in memory (`ChangedStates`) and looks
/// keys up there only once a VM has let go of states: under memory pressure, when the
/// VMs drop their states at every checkpoint and read them back, a series and separate
/// questions still answer exactly as without it.
@Suite("Questions under memory pressure")
struct SeriesEvictionTests {
    @Test("with the VMs letting go of their states, a series and separate questions equal the answers without, sequential and parallel")
    func underEviction() throws {
        let count = 4_000
        let w = try TemporalTests.built(SeriesTests.log(count: count, streams: 2_000, seed: 7, lateness: 3000), parallel: 1)
        let points = SeriesTests.points(6, seed: 7, span: Int64(count) * 10 + 1440).map { TemporalSelection(asOf: $0) }
        let projection = try w.load("order_totals")

        func answers(memory: Int?, parallel: Int, series: Bool) throws -> [[String]] {
            var options = TemporalOptions()
            options.parallel = parallel
            if let memory { options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: memory, instructionsPerEvent: 1_000_000)) }
            var lines = Array(repeating: [String](), count: points.count)
            if series {
                try w.store.forEachStateBytes(projection, at: points, options: options) { point, key, state in
                    lines[point].append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
                }
            } else {
                for (point, time) in points.enumerated() {
                    try w.store.forEachState(projection, at: time, options: options) { lines[point].append("\($0) \($1)") }
                }
            }
            return lines
        }

        let expected = try answers(memory: nil, parallel: 1, series: false)
        #expect(expected.last!.count > 500, "the last point must hold many states")
        for parallel in [1, 2] {
            for series in [true, false] {
                let got = try answers(memory: 1 << 20, parallel: parallel, series: series)
                #expect(SeriesTests.difference(got, expected) == nil, "parallel \(parallel), series \(series)")
            }
        }

        // The VMs did let go of their states in the one pass.
        var options = TemporalOptions()
        options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 1_000_000))
        options.useSnapshots = false
        let states = try TemporaryStates(storePath: w.store.path)
        let ends = try states.readStates { db in try SelectedRange.ends(points, db) }
        let fold = try PointFold(
            store: w.store, states: states, projections: [projection], first: points[0], end: ends[0], more: true, options: options)
        for (point, end) in zip(points, ends) { try fold.advance(to: point, end: end) }
        #expect(fold.members[0].run.cache != nil, "the test must make the VMs let go of their states")
    }
}
