import Foundation
import Testing

@testable import AuditEngine

@Suite("Projection names compare as SQLite compares table names")
struct ProjectionNameTests {
    static let counter = """
        return { on = { Placed = function(s, e) s.n = (s.n or 0) + 1 end } }
        """

    @Test("names that are, or would collide with, the engine's and SQLite's tables are refused in any case", arguments: [
        "events", "Events", "EVENTS", "chain_head", "Chain_Head", "export_runs", "snapshots", "grdb_migrations",
        "order_totals__build", "order_totals__BUILD", "x__Build", "audit_code", "AUDIT_x", "Audit_Code", "sqlite_x", "SQLITE_stat1",
        "grdb_issue_102",
    ])
    func refused(name: String) throws {
        let w = try Workspace()
        w.projection(name, Self.counter)
        #expect { try w.load(name) } throws: { error in
            guard let error = error as? ProjectionError else { return false }
            return error.projection == name && error.message.hasPrefix("\(w.projectionsDir)/\(name).lua: ") && error.message.contains("rename the file")
        }
    }

    @Test("names near the reserved ones still work", arguments: ["eventsx", "my_events", "audit", "auditx", "sqlite", "order__builder", "build"])
    func allowed(name: String) throws {
        let w = try Workspace()
        w.projection(name, Self.counter)
        #expect(try w.load(name).name == name)
    }

    @Test("X__BUILD never destroys X's table: it is refused, and X rebuilds with its states intact")
    func buildSuffixCollision() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 300, streams: 20, seed: 7)
        w.projection("order_totals__BUILD", orderTotals)
        let loaded = try Projection.loadAll(directory: w.projectionsDir)
        #expect(loaded.count == 2)
        let projections = loaded.compactMap { try? $0.get() }
        #expect(projections.map(\.name) == ["order_totals"])
        try w.store.replay(projections)
        w.projection("order_totals", orderTotals.replacingOccurrences(of: "version = 1", with: "version = 2"))
        try w.store.replay([try w.load("order_totals")])
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("two files differing only in case fail, each naming both files; the other projections are built")
    func caseCollision() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 200, streams: 10, seed: 3)
        w.projection("Order_Totals", orderTotals)
        w.projection("zz_other", Self.counter)
        let loaded = try Projection.loadAll(directory: w.projectionsDir)
        var failed: [String: String] = [:]
        for case .failure(let error) in loaded { failed[error.projection] = error.message }
        #expect(Set(failed.keys) == ["Order_Totals", "order_totals"])
        for message in failed.values {
            #expect(message.contains("\(w.projectionsDir)/Order_Totals.lua and \(w.projectionsDir)/order_totals.lua differ only in case"), "\(message)")
        }
        let outcomes = try w.store.replay(loaded.compactMap { try? $0.get() })
        #expect(outcomes.map(\.projection) == ["zz_other"] && outcomes[0].status == .rebuilt)
        // Given to replay directly (loaded one by one), they fail there too; the others finish.
        let direct = try w.store.replay([try w.load("order_totals"), try w.load("Order_Totals"), try w.load("zz_other")])
        #expect(direct.map(\.projection) == ["order_totals", "Order_Totals", "zz_other"])
        for outcome in direct.prefix(2) {
            guard case .failed(let error) = outcome.status else { Issue.record("\(outcome)"); continue }
            #expect(error.message.contains("differ only in case"))
        }
        #expect(direct[2].status == .upToDate)
        #expect(try w.store.projectionRecords().live.keys.sorted() == ["zz_other"])
        // Removing one of the two files recovers: the other is built.
        try FileManager.default.removeItem(atPath: w.projectionsDir + "/Order_Totals.lua")
        try w.replay(["order_totals"])
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
    }

    @Test("a file renamed to another case does not take over the table of the projection the database holds")
    func renamedCase() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 100, streams: 10, seed: 5)
        try w.replay(["order_totals"])
        try FileManager.default.moveItem(atPath: w.projectionsDir + "/order_totals.lua", toPath: w.projectionsDir + "/Order_totals.lua")
        let outcomes = try w.replay(["Order_totals"])
        guard case .failed(let error) = outcomes[0].status else { Issue.record("\(outcomes)"); return }
        #expect(error.message.contains("the database holds projection order_totals, whose table is this one's"), "\(error.message)")
        #expect(try w.dump("order_totals") == expectedOrderTotals(log))
        #expect(try w.store.projectionRecords().live.keys.sorted() == ["order_totals"])
    }
}
