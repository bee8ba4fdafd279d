import Foundation
import Testing
import AuditEngine

/// The programs of docs/library.md's "Points in time, explain, snapshots and tests", as
/// printed there (with the repository's paths): they compile against the public API
/// (a plain import, not @testable) and do what the text says.
@Suite("Library docs: points in time, explain, tests")
struct LibraryDocsTests {
    @Test("the temporal query, explain and a projection's test file, as docs/library.md shows them")
    func pointsInTime() throws {
        let dir = TempDir()
        let store = try EventStore(path: dir.file("audit.db"), create: true)
        try store.ingest(path: exampleLog("road-fines.jsonl"))
        let root = repositoryRoot
        let fines = try Projection.load(file: root + "/projections/fine_balances.lua", libDirectory: root + "/projections/lib")
        _ = try store.replay([fines])

        let endOf2005 = TemporalSelection(asOf: try Timestamp(dateOrTime: "2005-12-31"))
        var temporal = TemporalOptions()
        temporal.parallel = 2
        var states: [String] = []
        try store.forEachState(fines, at: endOf2005, key: "S45359", options: temporal) { key, state in states.append(key) }
        #expect(states == ["S45359"])
        var rows: [[SQLValue]] = []
        try store.query(sql: "SELECT count(*) FROM fine_balances WHERE balance_cents > 0", at: endOf2005,
                        projections: [fines], options: temporal, header: { _ in }, row: { rows.append($0) })
        #expect(rows.count == 1)

        var steps: [Int64] = []
        try store.explain(fines, key: "S45359") { step in steps.append(step.event.seq) }
        #expect(!steps.isEmpty && steps == steps.sorted())

        let path = root + "/projections/fine_balances.test"
        let tests = try ProjectionTestFile.parse(try String(contentsOfFile: path, encoding: .utf8), path: path)
        #expect(!tests.cases.isEmpty)
        for testCase in tests.cases {
            let result = try testCase.run(fines, directory: NSTemporaryDirectory())
            #expect(result.passed, "\(testCase.name): \(result.problems.map { "line \($0.line): \($0.message)" })")
        }
        #expect(try store.snapshots().allSatisfy { $0.projection == "fine_balances" })
    }
}
