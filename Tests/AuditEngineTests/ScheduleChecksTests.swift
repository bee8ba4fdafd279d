import Foundation
import Testing

@testable import AuditEngine

@Suite("What schedule list checks before a run")
struct ScheduleChecksTests {
    /// A workspace with one export and its query, key and destination as the test sets them up.
    func problems(_ dir: TempDir, _ store: EventStore, export: String) throws -> [String] {
        try ("[exports.x]\ndestination = \"out\"\nschedule = \"@daily\"\n" + export).write(
            toFile: dir.file("audit.toml"), atomically: true, encoding: .utf8)
        let scheduler = ExportScheduler(store: store, config: try ScheduleConfig.load(file: dir.file("audit.toml")))
        return scheduler.problems(of: scheduler.config.exports[0])
    }

    func write(_ dir: TempDir, _ name: String, _ text: String, mode: Int = 0o600) throws {
        let path = dir.file(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test("a workspace that would run has no problems")
    func clean() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        _ = try SigningKey.generate(file: dir.file("keys/export.key"))
        try write(dir, "queries/q.sql", "SELECT count(*) AS n FROM events WHERE seq > :after")
        #expect(try problems(dir, store, export: "what = \"query:q\"\nparams = { after = 1 }\nsigning_key = \"keys/export.key\"\n") == [])
        #expect(try problems(dir, store, export: "what = \"events\"\n") == [])
    }

    @Test("each thing a run would fail on is named", arguments: [
        ("what = \"query:nosuch\"\n", "queries/nosuch.sql: no such saved query"),
        ("what = \"query:stale\"\n", "no such table: fine_balances (the tables are: events; a projection that does not exist or was never built has none: run audit replay)"),
        ("what = \"query:broken\"\n", "queries/broken.sql: incomplete input"),
        ("what = \"query:param\"\n", "missing parameter(s): --param after=…"),
        ("what = \"query:writes\"\n", "queries/writes.sql: "),
        ("what = \"query:param\"\nparams = { after = 1, before = 2 }\n", "the query has no parameter(s) :before"),
        ("what = \"events\"\nsigning_key = \"keys/missing.key\"\n", "cannot read the signing key"),
        ("what = \"events\"\nsigning_key = \"keys/shared.key\"\n", "can be read by other users (mode 644); run `chmod 600"),
        ("what = \"events\"\nsigning_key = \"keys/group.key\"\n", "can be read by other users (mode 640)"),
        ("what = \"events\"\nsigning_key = \"keys/garbage.key\"\n", "is not an audit signing key"),
        ("what = \"events\"\nsigning_key = \"keys\"\n", "keys: it is not a file"),
    ])
    func problem(export: String, says: String) throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        try write(dir, "queries/stale.sql", "SELECT * FROM fine_balances")
        try write(dir, "queries/broken.sql", "SELECT * FROM events WHERE")
        try write(dir, "queries/writes.sql", "DELETE FROM events")
        try write(dir, "queries/param.sql", "SELECT seq FROM events WHERE seq > :after")
        let key = SigningKey().publicKeyBase64  // any base64 text of the wrong length
        try write(dir, "keys/shared.key", key, mode: 0o644)
        try write(dir, "keys/group.key", key, mode: 0o640)
        try write(dir, "keys/garbage.key", "not a key\n")
        let found = try problems(dir, store, export: export)
        #expect(found.count == 1 && found[0].contains(says), "\(found)")
    }

    @Test("a destination that is a file, or under one, is named")
    func destination() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        try write(dir, "out", "a file")
        #expect(try problems(dir, store, export: "what = \"events\"\n") == ["the destination \(dir.file("out")) is not a directory (destination \(dir.file("out")))"])
        #expect(ExportScheduler.destinationProblem(dir.file("out/deeper/still")) == "the destination's parent \(dir.file("out")) is not a directory (destination \(dir.file("out/deeper/still")))")
        #expect(ExportScheduler.destinationProblem(dir.file("new/folder")) == nil)
    }

    @Test("a folder that cannot be written is named", .enabled(if: getuid() != 0, "root can write anywhere"))
    func unwritable() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("locked"), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o500])
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: dir.file("locked")) }
        #expect(ExportScheduler.destinationProblem(dir.file("locked/out"))?.contains("is not writable: Permission denied") == true)
    }
}
