import Foundation
import Testing

/// `audit projections` is what cron and monitoring look at: lag, rate, status, and an
/// exit code that says when a projection is failed.
@Suite("audit projections")
struct ProjectionsCommandTests {
    func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end, Bad = function(s, e) error('bad event') end } }"
            .write(toFile: dir.path + "/projections/count.lua", atomically: true, encoding: .utf8)
        try "return { on = { T = function(s, e) s.n = 1 end } }".write(toFile: dir.path + "/projections/other.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path).status == 0)
        let lines = (0..<500).map { #"{"id":"e\#($0)","stream":"s\#($0 % 9)","type":"T","data":{}}"# }
        try lines.joined(separator: "\n").write(toFile: dir.path + "/e.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["ingest", "e.jsonl"], in: dir.path).status == 0)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        return dir
    }

    @Test("all ok: exit 0, with each projection's lag and the rate of the replay that moved it")
    func ok() throws {
        let dir = try workspace()
        #expect(try audit(["append", "--stream", "s1", "--type", "T", "--data", "{}"], in: dir.path).status == 0)
        let listed = try audit(["projections", "--format", "jsonl"], in: dir.path)
        // (Only the warning that Bad never occurs.)
        #expect(listed.status == 0 && !listed.stderr.contains("failed"), "\(listed.stderr)")
        let rows = try listed.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(rows.map { $0["name"] as? String } == ["count", "other"])
        for row in rows {
            #expect(row["lag"] as? Int == 1 && row["status"] as? String == "ok", "\(row)")
            #expect((row["events_per_s"] as? Int ?? 0) > 0, "\(row)")
        }
    }

    @Test("a failed projection: listed with its error, exit 65, each failure named on stderr")
    func failed() throws {
        let dir = try workspace()
        #expect(try audit(["append", "--stream", "s1", "--type", "Bad", "--data", "{}"], in: dir.path).status == 0)
        #expect(try audit(["replay"], in: dir.path).status == 65)
        let listed = try audit(["projections", "--format", "csv"], in: dir.path)
        #expect(listed.status == 65, "\(listed.stdout)")
        #expect(listed.stdout.contains(#"count,1,"#) && listed.stdout.contains(#""failed: projection count failed at seq"#), "\(listed.stdout)")
        #expect(listed.stdout.contains(",ok\n"), "other is still ok: \(listed.stdout)")
        #expect(listed.stderr.contains("audit: projection count failed at seq") && listed.stderr.contains("count.lua:1: bad event"), "\(listed.stderr)")
        #expect(!listed.stderr.contains("projection count: projection count"), "the name once: \(listed.stderr)")
    }

    @Test("the database's projections the folder lacks are listed from the database, with a warning")
    func lackingListed() throws {
        let dir = try workspace()
        try FileManager.default.removeItem(atPath: dir.path + "/projections/other.lua")
        let listed = try audit(["projections", "--format", "csv"], in: dir.path)
        #expect(listed.status == 0 && listed.stdout.contains("\nother,1,"), "\(listed.stdout)")
        #expect(listed.stderr.contains("the database holds other, which projections/ lacks"), "\(listed.stderr)")
    }
}
