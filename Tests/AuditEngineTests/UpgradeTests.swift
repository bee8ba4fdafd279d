import Foundation
import Testing

@testable import AuditEngine

/// A database an older build (schema v7) filled: chains, a projection with snapshots,
/// and a signed export, as `init` finds it.
@Suite("Upgrading an older database")
struct UpgradeTests {
    /// A v7 database at `w.dir/old.db` holding `w`'s log, projection and export.
    static func olderDatabase() throws -> (Workspace, old: String, export: String, key: SigningKey) {
        let (w, _) = try Workspace.withOrderTotals(count: 600, streams: 40, seed: 3)
        var options = ReplayOptions()
        options.snapshotNow = true
        try w.replay(["order_totals"], options)
        let key = SigningKey()
        let export = try w.store.export(eventsExport(w.dir.file("export"), key: key)).directory
        let old = w.dir.file("old.db")
        try downgradeToV7(w.store.path, old)
        return (w, old, export, key)
    }

    @Test("an older database is read as it is, refused by writers, and upgraded by init: every row and hash kept, the same head")
    func upgrade() throws {
        let (w, old, export, key) = try Self.olderDatabase()
        let before = try EventStore.verify(path: old)
        let states = try w.dump("order_totals")
        #expect(throws: StoreError.schemaTooOld(path: old)) { try EventStore(path: old) }
        #expect(try EventStore(path: old, access: .readOnly).events().count == 602)

        let steps = Steps()
        let report = try EventStore.upgrade(path: old) { steps.add($0.step) }
        #expect(report.applied == Array(Schema.migrationIdentifiers.drop { $0 != "v8-strict-events" }) && report.from == "v7-snapshot-chunks")
        #expect(report.events == before.events && report.head == before.head)
        #expect(steps.all.contains("copying the events into a STRICT table") && steps.all.contains("verifying the log"))

        let store = try EventStore(path: old)
        #expect(try store.verify() == before)
        #expect(try sqlite3CLI(old, "SELECT sql FROM sqlite_master WHERE name = 'events'").contains(") STRICT"))
        #expect(problems(export, key: try PublicKey(argument: key.publicKeyBase64), store: store) == [])
        var after: [String] = []
        try store.forEachState(projection: "order_totals") { after.append("\($0) \($1)") }
        #expect(after == states)
        // Snapshots still answer a question at a time.
        #expect(try store.snapshots().count == (try w.store.snapshots().count))
        try store.append(NewEvent(stream: "order-1", type: "OrderCancelled"))
        #expect(try store.verify().events == 603)
        #expect(try EventStore.upgrade(path: old).applied.isEmpty)
    }

    @Test("a damaged older database is not upgraded: init exits 4 and the file is as it was")
    func damaged() throws {
        let (w, old, _, _) = try Self.olderDatabase()
        try sqlite3CLI(old, "DROP TRIGGER events_are_not_updated; UPDATE events SET data = '{}' WHERE seq = 7")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: old))
        let result = try runAudit(["--db", old, "init"], in: w.dir.path)
        #expect(result.status == 4 && result.stderr.contains("seq 7: the stored event does not match its hash"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: old)) == bytes)
        #expect(try sqlite3CLI(old, "SELECT count(*) FROM grdb_migrations").hasPrefix("7"))
    }

    @Test("audit init on an older database says what it did; other writers say to run it; read-only commands work before")
    func command() throws {
        let (w, old, _, _) = try Self.olderDatabase()
        let head = try EventStore.verify(path: old).head
        let append = try runAudit(["--db", old, "append", "--stream", "s", "--type", "T", "--data", "{}"], in: w.dir.path)
        #expect(append.status == 1 && append.stderr.contains("the database at \(old) was made by an older audit; run audit init to upgrade it"))
        for command in [["verify"], ["events", "--limit", "1"], ["projections", "--projections", w.projectionsDir], ["state", "order_totals", "order-1"]] {
            let result = try runAudit(["--db", old] + command, in: w.dir.path)
            #expect(result.status == 0, "\(command): \(result.stderr)")
        }
        let upgraded = try runAudit(["--db", old, "init", "--projections", w.projectionsDir, "--queries", w.dir.file("q")], in: w.dir.path)
        #expect(upgraded.status == 0)
        #expect(upgraded.stderr.contains("upgraded \(old) from schema v7-snapshot-chunks to \(Schema.migrationIdentifiers.last!): verified 602 events before and after, head \(head) unchanged"))
        #expect(upgraded.stderr.contains("v8-strict-events: events, chain_head and event_correlations rebuilt as STRICT tables"))
        let again = try runAudit(["--db", old, "init", "--projections", w.projectionsDir, "--queries", w.dir.file("q")], in: w.dir.path)
        #expect(again.stderr.contains("already initialised \(old) (602 events)"))
        #expect(try runAudit(["--db", old, "append", "--stream", "s", "--type", "T", "--data", "{}"], in: w.dir.path).status == 0)
    }
}

/// Progress steps heard, from any thread.
final class Steps: @unchecked Sendable {
    // @unchecked: every access to `seen` holds `lock`.
    private let lock = NSLock()
    private var seen: [String] = []
    func add(_ step: String) { lock.withLock { seen.append(step) } }
    var all: [String] { lock.withLock { seen } }
}
