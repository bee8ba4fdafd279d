import Foundation
import Testing

/// `on = { ["*"] = … }`: every type without a handler of its own, in every way events
/// reach a projection (replay, a point in time, explain, tests, verify); the starter
/// of `audit init` uses it and so works on any log without a warning.
@Suite("The catch-all handler")
struct CatchAllHandlerTests {
    static let projection = """
        return {
          version = 1,
          on = {
            ["*"] = function(s, e) s.n = (s.n or 0) + 1; s.last = e.type end,
            Special = function(s, e) s.special = (s.special or 0) + 1 end,
          },
          columns = { n = "integer" },
        }
        """

    func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try Self.projection.write(toFile: dir.path + "/projections/all.lua", atomically: true, encoding: .utf8)
        // Replayed with it: the replay reads every type, but this one still gets only X.
        try #"return { on = { X = function(s, e) s.x = (s.x or 0) + 1 end } }"#
            .write(toFile: dir.path + "/projections/only_x.lua", atomically: true, encoding: .utf8)
        try audit(["init"], in: dir.path)
        let lines = [
            #"{"id":"1","stream":"a","type":"X","data":{},"occurred_at":"2020-01-01T00:00:00Z"}"#,
            #"{"id":"2","stream":"a","type":"Special","data":{},"occurred_at":"2020-01-02T00:00:00Z"}"#,
            #"{"id":"3","stream":"b","type":"Y","data":{},"occurred_at":"2020-01-03T00:00:00Z"}"#,
            #"{"id":"4","stream":"a","type":"*","data":{},"occurred_at":"2020-01-04T00:00:00Z"}"#,
        ]
        #expect(try audit(["ingest", "-"], in: dir.path, stdin: lines.joined(separator: "\n") + "\n").status == 0)
        return dir
    }

    @Test("replay and reads: every type reaches '*' unless it has its own handler")
    func replay() throws {
        let dir = try workspace()
        let replay = try audit(["replay"], in: dir.path)
        #expect(replay.status == 0 && replay.stdout.contains(#"{"projection":"all","status":"rebuilt","position":4,"events":4}"#), "\(replay.stdout)\(replay.stderr)")
        let expected = """
            {"key":"a","state":{"last":"*","n":2,"special":1}}
            {"key":"b","state":{"last":"Y","n":1}}

            """
        #expect(try audit(["state", "all"], in: dir.path).stdout == expected)
        #expect(try audit(["state", "only_x"], in: dir.path).stdout == #"{"key":"a","state":{"x":1}}"# + "\n")
        #expect(try audit(["state", "all", "--as-of", "2020-01-04"], in: dir.path).stdout == expected)
        #expect(try audit(["state", "all", "--as-of", "2020-01-02"], in: dir.path).stdout == #"{"key":"a","state":{"last":"X","n":1,"special":1}}"# + "\n")
        let explain = try audit(["explain", "all", "a", "--format", "csv"], in: dir.path)
        #expect(explain.stdout.split(separator: "\n").map { $0.split(separator: ",")[2] } == ["type", "X", "Special", "*"])
        let verify = try audit(["verify", "--projections", "all"], in: dir.path)
        #expect(verify.status == 0 && verify.stdout.contains(#""status":"ok""#), "\(verify.stdout)")
        #expect(try audit(["query", "--sql", #"SELECT sum(n) AS n FROM "all""#, "--format", "csv"], in: dir.path).stdout == "n\n3\n")
        #expect(!(try audit(["projections"], in: dir.path).stderr.contains("never occurs")))
    }

    @Test("the engine's CodeBuilt records reach a handler named for them, never '*'; a user's CodeBuilt event does")
    func codeBuilt() throws {
        let dir = try workspace()
        try #"return { on = { CodeBuilt = function(s, e) s.builds = (s.builds or 0) + 1 end } }"#
            .write(toFile: dir.path + "/projections/builds.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        // A rebuild reads the first replay's three CodeBuilt records (streams audit-code-NAME).
        #expect(try audit(["replay", "--rebuild"], in: dir.path).status == 0)
        let all = try audit(["state", "all"], in: dir.path)
        #expect(all.stdout == #"{"key":"a","state":{"last":"*","n":2,"special":1}}"# + "\n" + #"{"key":"b","state":{"last":"Y","n":1}}"# + "\n", "\(all.stdout)\(all.stderr)")
        #expect(all.stderr.isEmpty, "\(all.stderr)")
        let builds = try audit(["state", "builds", "--format", "csv"], in: dir.path)
        #expect(builds.stdout.contains("audit-code-all,") && builds.stdout.contains("audit-code-only_x,"), "\(builds.stdout)")
        // The same type on a stream of the user's is an ordinary event.
        #expect(try audit(["append", "--stream", "ci", "--type", "CodeBuilt", "--data", "{}"], in: dir.path).status == 0)
        #expect(try audit(["state", "all", "ci"], in: dir.path).stdout.contains(#""last":"CodeBuilt""#))
        let verify = try audit(["verify", "--projections"], in: dir.path)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }

    @Test("the starter projection works on a log that is not the example, without a warning, and its tests pass")
    func starter() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let lines = [#"{"id":"o1","stream":"order-1","type":"OrderPlaced","data":{}}"#, #"{"id":"o2","stream":"order-1","type":"OrderShipped","data":{}}"#]
        try audit(["ingest", "-"], in: dir.path, stdin: lines.joined(separator: "\n") + "\n")
        let replay = try audit(["replay"], in: dir.path)
        #expect(replay.status == 0 && replay.stderr.isEmpty, "\(replay.stderr)")
        let projections = try audit(["projections"], in: dir.path)
        #expect(projections.stderr.isEmpty, "\(projections.stderr)")
        let state = try audit(["state", "stream_activity", "order-1"], in: dir.path)
        #expect(state.stdout.contains(#""events":2"#) && state.stdout.contains(#""last_type":"OrderShipped""#))
        let tests = try audit(["test"], in: dir.path)
        #expect(tests.status == 0 && tests.stdout.hasSuffix("2 cases in 1 file: 2 passed, 0 failed\n"), "\(tests.stdout)")
    }
}
