import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// Every promoted build's code is kept in the database (DECISIONS 15): its files
/// content-addressed in `audit_code`, announced by a `CodeBuilt` event in the chain.
@Suite("The code history")
struct CodeHistoryTests {
    static let money = "local M = {} function M.cents(x) return math.floor(x * 100 + 0.5) end return M"

    static func totals(_ version: Int) -> String {
        """
        local money = require "money"
        return {
          version = \(version),
          on = { OrderPlaced = function(s, e) s.cents = money.cents(e.data.amount) end },
          columns = { cents = "integer" },
        }
        """
    }

    func workspace() throws -> Workspace {
        let w = try Workspace()
        w.module("money", Self.money)
        w.projection("totals", Self.totals(1))
        w.projection("other", Self.totals(1).replacingOccurrences(of: "OrderPlaced", with: "Other"))
        try w.ingest((1...5).map { #"{"stream":"o-\#($0)","type":"OrderPlaced","data":{"amount":\#($0).5}}"# })
        return w
    }

    @Test("a promoted build records its files once each, and a CodeBuilt event naming them and their hashes")
    func buildRecorded() throws {
        let w = try workspace()
        try w.replay(["totals", "other"])
        let builds = try w.store.projectionBuilds()
        #expect(builds.map(\.projection) == ["totals", "other"])
        let totals = try #require(builds.first)
        #expect(totals.codeHash == (try w.load("totals")).codeHash)
        #expect(totals.handledTypes == ["OrderPlaced"])
        // The module both use is stored once; each script once.
        let rows = try w.store.readTransaction { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_code") }
        #expect(rows == 3)
        let event = try #require(try w.store.events(EventFilter(fromSeq: totals.eventSeq, toSeq: totals.eventSeq)).first)
        #expect(event.stream == "audit-code-totals" && event.type == "CodeBuilt")
        let data = try JSONParser.parse(event.data)
        #expect(data["code_hash"]?.stringValue == totals.codeHash)
        #expect(data["position"] == .int(5))
        #expect(try JSONParser.parse(event.meta)["engine_version"]?.stringValue == EngineVersion.current)
        // The chain covers it.
        #expect(try w.store.verify().events == 7)
    }

    @Test("the stored code loads the same projection as the folder, even after the folder changed")
    func storedCodeLoads() throws {
        let w = try workspace()
        try w.replay(["totals"])
        let original = try w.load("totals")
        w.projection("totals", Self.totals(2))
        w.module("money", Self.money + " -- changed")
        let build = try #require(try w.store.projectionBuilds().first)
        let stored = try w.store.storedProjection(build)
        #expect(stored.codeHash == original.codeHash && stored.version == 1)
        #expect(stored.handledTypes == original.handledTypes)
        #expect(stored.code == original.code)
        // A rebuild with the new code is a second build; the first stays.
        try w.replay(["totals"])
        let builds = try w.store.projectionBuilds()
        #expect(builds.count == 2 && builds[1].version == 2 && builds[0].codeHash == original.codeHash)
        #expect(try w.store.storedProjection(builds[0]).code == original.code)
    }

    @Test("an incremental replay records nothing new; the CodeBuilt events do not leave projections behind")
    func incrementalRecordsNothing() throws {
        let w = try workspace()
        try w.replay(["totals", "other"])
        try w.ingest([#"{"stream":"o-9","type":"OrderPlaced","data":{"amount":1}}"#])
        let outcomes = try w.replay(["totals", "other"])
        #expect(outcomes.map(\.eventsApplied) == [1, 0])
        #expect(try w.store.projectionBuilds().count == 2)
        let head = try w.store.head().seq
        for record in try w.store.projectionRecords().live.values { #expect(record.position == head, "\(record.name)") }
    }

    @Test("a table built before the code history has the folder's code recorded by the next replay, as recorded later")
    func recordedLater() throws {
        let w = try workspace()
        try w.replay(["totals"])
        try w.store.writeTransaction { db in
            try db.execute(sql: "DELETE FROM audit_builds; DELETE FROM audit_code")
        }
        // The builds are the CodeBuilt events' (the index is only for finding them):
        // the first is still listed, and the replay records the folder's code again.
        #expect(try w.store.projectionBuilds().count == 1)
        try w.replay(["totals"])
        #expect(try w.store.projectionBuilds().count == 2)
        let build = try #require(try w.store.projectionBuilds().last)
        let event = try #require(try w.store.events(EventFilter(fromSeq: build.eventSeq, toSeq: build.eventSeq)).first)
        #expect(try JSONParser.parse(event.data)["recorded_after_build"] == .bool(true))
        #expect(try w.store.storedProjection(build).codeHash == (try w.load("totals")).codeHash)
    }

    @Test("stored code altered outside the engine is refused, naming the file")
    func alteredCode() throws {
        let w = try workspace()
        try w.replay(["totals"])
        let build = try #require(try w.store.projectionBuilds().first)
        let scriptHash = (try w.load("totals")).code.script.sha256
        try w.store.writeTransaction { db in
            try db.execute(sql: "UPDATE audit_code SET content = content || ' ' WHERE sha256 = ?", arguments: [scriptHash])
        }
        #expect {
            try w.store.storedProjection(build)
        } throws: { "\($0)".contains("totals.lua") && "\($0)".contains("altered") }
    }

    @Test("the registry: a database holding none registers the folder; otherwise newcomers need add")
    func registryPlan() throws {
        let empty = ProjectionRegistry(names: [])
        #expect(empty.plan(folder: ["a", "b"], add: false).replay == ["a", "b"])
        let held = ProjectionRegistry(names: ["a", "c"])
        let plan = held.plan(folder: ["A", "b"], add: false)
        #expect(plan.replay == ["A"] && plan.notAdded == ["b"] && plan.lacking == ["c"])
        #expect(held.plan(folder: ["a", "b"], add: true).replay == ["a", "b"])
        #expect(held.plan(folder: ["a", "b"], named: ["b"], add: false).notAdded == ["b"])
        let w = try workspace()
        #expect(try w.store.projectionRegistry().names.isEmpty)
        try w.replay(["totals"])
        #expect(try w.store.projectionRegistry().names == ["totals"])
    }
}
