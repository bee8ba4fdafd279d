import Foundation
import Testing

@testable import AuditEngine

/// `verify --projections`: every change to a projection's table, its shape or its
/// catalog row is found by rebuilding from the log alone; limits are "could not check".
@Suite("Projections checked against a rebuild from the log")
struct ProjectionVerifyTests {
    /// order_totals over 1,500 events of 60 orders, replayed.
    static func fixture() throws -> (Workspace, Projection) {
        let (w, _) = try Workspace.withOrderTotals(count: 1_500, streams: 60, seed: 11)
        let projection = try w.load("order_totals")
        try w.store.replay([projection])
        return (w, projection)
    }

    func check(_ w: Workspace, _ projection: Projection, _ options: ProjectionCheckOptions = ProjectionCheckOptions()) throws -> ProjectionCheck {
        try #require(try w.store.verifyProjections([projection], options: options).first)
    }

    func keys(_ w: Workspace) throws -> [String] {
        try sqlite3CLI(w.dir.file("audit.db"), "SELECT key FROM order_totals ORDER BY key").split(separator: "\n").map(String.init)
    }

    @Test("an untouched table is equal to its rebuild, key for key", arguments: [1, 2])
    func untouched(parallel: Int) throws {
        let (w, projection) = try Self.fixture()
        var options = ProjectionCheckOptions()
        options.parallel = parallel
        let result = try check(w, projection, options)
        #expect(result.status == .ok && result.differences.isEmpty, "\(result)")
        let count = try keys(w).count
        #expect(result.position == 1_501 && result.differences.keys == count)  // 1,501: its CodeBuilt event
    }

    /// Edits of the live table, each with the difference it must show for `key`.
    static let edits: [(String, String, TableDifferences.Kind, String)] = [
        ("state of the first key", "UPDATE order_totals SET state = replace(state, '\"status\"', '\"statuz\"') WHERE key = (SELECT min(key) FROM order_totals)", .changed, "state differs"),
        ("state of the last key", "UPDATE order_totals SET state = state || ' ' WHERE key = (SELECT max(key) FROM order_totals)", .changed, "state differs"),
        ("a declared column", "UPDATE order_totals SET total = total + 1 WHERE key = (SELECT min(key) FROM order_totals)", .changed, "column total differs"),
        ("a column's storage class", "UPDATE order_totals SET total = CAST(total AS BLOB) WHERE key = (SELECT max(key) FROM order_totals)", .changed, "column total differs"),
        ("the state's storage class", "UPDATE order_totals SET state = CAST(state AS BLOB) WHERE key = (SELECT min(key) FROM order_totals)", .changed, "state differs"),
        ("state and column together", "UPDATE order_totals SET status = 'paid', state = state || ' ' WHERE key = (SELECT max(key) FROM order_totals)", .changed, "state, column status differ"),
        ("a row deleted", "DELETE FROM order_totals WHERE key = (SELECT min(key) FROM order_totals)", .missing, "the rebuild has a state for it, the table none"),
        ("a row added", "INSERT INTO order_totals (key, state) VALUES ('order-zzz', '{}')", .extra, "the table has a state the rebuild has not"),
    ]

    @Test("a changed, removed or added row is named", arguments: edits.map(\.0))
    func editedRow(edit: String) throws {
        let (sql, kind, detail) = Self.edits.first { $0.0 == edit }.map { ($0.1, $0.2, $0.3) }!
        let (w, projection) = try Self.fixture()
        let before = try keys(w)
        try sqlite3CLI(w.dir.file("audit.db"), sql)
        let result = try check(w, projection)
        #expect(result.status == .differs)
        let found = try #require(result.differences.first.first, "\(result)")
        #expect(found.kind == kind && found.detail == detail, "\(found)")
        let expectedKey = kind == .extra ? "order-zzz" : sql.contains("max(key)") ? before.last! : before.first!
        #expect(found.key == expectedKey)
        #expect(result.differences.changed + result.differences.missing + result.differences.extra == 1)
    }

    @Test("a key stored as a blob is an extra key, and its text key missing")
    func blobKey() throws {
        let (w, projection) = try Self.fixture()
        let first = try keys(w)[0]
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE order_totals SET key = CAST(key AS BLOB) WHERE key = '\(first)'")
        let result = try check(w, projection)
        #expect(result.status == .differs && result.differences.missing == 1 && result.differences.extra == 1, "\(result)")
        #expect(result.differences.first.contains { $0.kind == .extra && $0.detail == "its key is stored as a blob, not text" })
        #expect(result.differences.first.contains { $0.kind == .missing && $0.key == first })
    }

    @Test("many changed keys: all counted, the first 20 named in key order")
    func manyChanges() throws {
        let (w, projection) = try Self.fixture()
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE order_totals SET total = total + 1")
        let result = try check(w, projection)
        let all = try keys(w)
        #expect(result.differences.changed == all.count && result.differences.first.count == 20)
        #expect(result.differences.first.map(\.key) == Array(all.prefix(20)))
    }

    @Test("the table dropped, or a column dropped: differs, saying what")
    func shape() throws {
        for (sql, reason) in [
            ("DROP TABLE order_totals", "its table order_totals is missing"),
            ("ALTER TABLE order_totals DROP COLUMN status", "its table's columns are (key text, state text, customer text, total integer)"),
        ] {
            let (w, projection) = try Self.fixture()
            try sqlite3CLI(w.dir.file("audit.db"), sql)
            let result = try check(w, projection)
            #expect(result.status == .differs && result.reason?.hasPrefix(reason) == true, "\(result)")
        }
    }

    @Test("the catalog's position moved: the rebuild folds to that position, and the table differs from it")
    func positionMoved() throws {
        let (w, projection) = try Self.fixture()
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE projections SET position = 1000 WHERE name = 'order_totals'")
        let result = try check(w, projection)
        #expect(result.status == .differs && result.position == 1000 && result.differences.changed > 0, "\(result)")
    }

    @Test("a table behind the head is compared at its own position")
    func behindHead() throws {
        let (w, projection) = try Self.fixture()
        try w.ingest(orderLog(count: 300, streams: 20, seed: 99).map { $0.replacingOccurrences(of: "\"order-", with: "\"order-late-") })
        let result = try check(w, projection)
        #expect(result.status == .ok && result.position == 1_501, "\(result)")
        #expect(try w.store.head().seq == 1_801)
    }

    @Test("projections at different positions are checked in one pass, each at its own")
    func differentPositions() throws {
        let (w, projection) = try Self.fixture()
        w.projection("counter", "return { on = { ItemAdded = function(s, e) s.n = (s.n or 0) + 1 end } }")
        try w.store.replay([try w.load("counter")])
        try w.ingest(orderLog(count: 300, streams: 20, seed: 99).map { $0.replacingOccurrences(of: "\"order-", with: "\"order-late-") })
        try w.store.replay([projection])
        let checks = try w.store.verifyProjections([projection, try w.load("counter")])
        // Each build's CodeBuilt event (1,501 and 1,502) comes before the 300 late events.
        #expect(checks.map(\.position) == [1_802, 1_502] && checks.map(\.status) == [.ok, .ok], "\(checks)")
        // A catalog position moved back makes the rebuild stop there: its states differ.
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE projections SET position = 700 WHERE name = 'counter'")
        let moved = try w.store.verifyProjections([projection, try w.load("counter")])
        #expect(moved.map(\.position) == [1_802, 700] && moved.map(\.status) == [.ok, .differs], "\(moved)")
    }

    @Test("other code than the table's, and a table never built: not compared, and said so")
    func notComparable() throws {
        let (w, projection) = try Self.fixture()
        w.projection("order_totals", orderTotals.replacingOccurrences(of: "version = 1", with: "version = 2"))
        let changed = try check(w, try w.load("order_totals"))
        #expect(changed.status == .couldNotCheck && changed.reason?.contains("its table was built by other code") == true, "\(changed)")
        w.projection("fresh", "return { on = { OrderPlaced = function(s, e) end } }")
        #expect(try check(w, try w.load("fresh")).status == .notBuilt)
        _ = projection
    }

    @Test("a rebuild stopped by a limit (memory, instruction budget) could not check; it is no difference")
    func limits() throws {
        let (w, _) = try Workspace.withOrderTotals(count: 400, streams: 20, seed: 2)
        w.projection("heavy", """
            return { on = { OrderPlaced = function(s, e) for i = 1, 2000 do end s.n = #string.rep("x", 2000000) end } }
            """)
        let heavy = try w.load("heavy")
        try w.store.replay([heavy])
        for limits in [LuaLimits(memoryBytes: 1 << 20, instructionsPerEvent: 1_000_000), LuaLimits(memoryBytes: 512 << 20, instructionsPerEvent: 1_000)] {
            var options = ProjectionCheckOptions()
            options.limits = LuaLimitOverrides(limits)
            let result = try check(w, heavy, options)
            #expect(result.status == .couldNotCheck && result.reason?.contains("stopped at a limit") == true, "\(limits): \(result)")
        }
    }

    @Test("a handler that fails on an event the table claims to have folded: differs")
    func failingRebuild() throws {
        let w = try Workspace()
        let log = orderLog(count: 400, streams: 20, seed: 2)
        try w.ingest(Array(log.prefix(150)))
        w.projection("picky", "return { on = { ItemAdded = function(s, e) if e.seq >= 200 then error('no') end s.n = e.seq end } }")
        let picky = try w.load("picky")
        try w.store.replay([picky])
        try w.ingest(Array(log.dropFirst(150)))
        let outcome = try w.store.replay([picky])
        guard case .failed = outcome[0].status else { Issue.record("\(outcome)"); return }
        let atPosition = try check(w, picky)
        #expect(atPosition.status == .ok && atPosition.position! < 200, "\(atPosition)")  // the table is right where it stopped
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE projections SET position = 400, status = 'ok', error = NULL WHERE name = 'picky'")
        let result = try check(w, picky)
        #expect(result.status == .differs && result.reason?.contains("rebuilding it from the log fails") == true, "\(result)")
    }

    @Test("from snapshots: it starts from one, says so, and still finds a change made after it")
    func fromSnapshots() throws {
        let (w, _) = try Workspace.withOrderTotals(count: 1_500, streams: 60, seed: 11)
        w.projection("order_totals", orderTotals.replacingOccurrences(of: "return {", with: "return { snapshot_every = 500,"))
        let projection = try w.load("order_totals")
        try w.store.replay([projection])
        var options = ProjectionCheckOptions()
        options.fromSnapshots = true
        let trusted = try check(w, projection, options)
        #expect(trusted.status == .ok && trusted.fromSnapshot != nil, "\(trusted)")
        try sqlite3CLI(w.dir.file("audit.db"), "UPDATE order_totals SET total = total + 1 WHERE key = (SELECT min(key) FROM order_totals)")
        let fromSeq1 = try check(w, projection)
        #expect(fromSeq1.status == .differs && fromSeq1.fromSnapshot == nil)
        #expect(try check(w, projection, options).status == .differs)
    }
}
