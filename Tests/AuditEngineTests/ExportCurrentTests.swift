import Foundation
import Testing

@testable import AuditEngine

/// A query export certifies the log up to its `chain.seq`: the projections it reads are
/// brought there first, and their positions in the manifest are that seq (DECISIONS 14).
@Suite("Query exports are current")
struct ExportCurrentTests {
    static let totals = """
        return { version = 1, on = { Placed = function(s, e) s.total = (s.total or 0) + e.data.amount end }, columns = { total = "integer" } }
        """

    func store(_ dir: TempDir) throws -> EventStore {
        let store = try exportStore(dir)
        try FileManager.default.createDirectory(atPath: dir.file("projections"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("queries"), withIntermediateDirectories: true)
        try Self.totals.write(toFile: dir.file("projections/totals.lua"), atomically: true, encoding: .utf8)
        try "SELECT key, total FROM totals ORDER BY key".write(toFile: dir.file("queries/totals.sql"), atomically: true, encoding: .utf8)
        _ = try store.replay([try Projection.load(file: dir.file("projections/totals.lua"))])
        // Appended after the replay: a stale table would miss it.
        try store.append(NewEvent(stream: "order-new", type: "Placed", data: .object([JSONMember("amount", .int(1000))])))
        return store
    }

    @Test("export --query after an append: the result has it, and each projection's position is the manifest's chain.seq")
    func caughtUpBeforeCapture() throws {
        let dir = TempDir()
        let store = try store(dir)
        let head = try store.head().seq
        let request = ExportRequest(
            name: "totals", content: .query(QuerySelection(name: "totals", sql: "SELECT key, total FROM totals ORDER BY key")),
            format: .csv, destination: .directory(dir.file("q")))
        let m = try store.export(request).manifest
        #expect(m.chain.seq == head)
        #expect(m.query?.projections.map(\.position) == [head])
        #expect(try String(contentsOfFile: dir.file("q/result-000001.csv"), encoding: .utf8).contains("order-new,1000"))
        #expect(problems(dir.file("q"), store: store) == [])
    }

    @Test("a scheduled query export catches up too")
    func scheduled() throws {
        let dir = TempDir()
        let store = try store(dir)
        let head = try store.head().seq
        try """
            [exports.report]
            what = "query:totals"
            destination = "exports/report"
            schedule = "0 * * * *"
            """.write(toFile: dir.file("audit.toml"), atomically: true, encoding: .utf8)
        let scheduler = ExportScheduler(store: store, config: try ScheduleConfig.load(file: dir.file("audit.toml")), clock: FakeClock("2024-06-30T10:20:00Z"))
        let outcome = try #require(try scheduler.runDue().first)
        let result = try outcome.result.get()
        #expect(result.manifest.chain.seq == head && result.manifest.query?.projections.map(\.position) == [head])
    }

    @Test("verify-export reports a manifest whose projection position differs from its chain.seq")
    func staleManifestReported() throws {
        let dir = TempDir()
        let store = try store(dir)
        let request = ExportRequest(
            name: "totals", content: .query(QuerySelection(name: "totals", sql: "SELECT key, total FROM totals ORDER BY key")),
            format: .csv, destination: .directory(dir.file("q")))
        let m = try store.export(request).manifest
        // As a build without catch-up wrote it: the table two events behind.
        let path = dir.file("q/manifest.json")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let stale = text.replacingOccurrences(
            of: #""position" *: *\#(m.chain.seq)"#, with: "\"position\": \(m.chain.seq - 2)", options: .regularExpression)
        #expect(stale != text)
        try stale.write(toFile: path, atomically: true, encoding: .utf8)
        let found = problems(dir.file("q"))
        #expect(found.contains { $0.contains("projection totals was at seq \(m.chain.seq - 2) when the query ran, not at the manifest's chain.seq \(m.chain.seq)") }, "\(found)")
    }
}
