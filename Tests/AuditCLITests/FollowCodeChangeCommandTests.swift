import Foundation
import Testing

/// `audit replay --follow` while a projection's file changes: the live table goes on with
/// the code of its build, the new code is built beside it and swapped in at the head.
@Suite("Following the log: a projection's code changes")
struct FollowCodeChangeCommandTests {
    typealias F = FollowCommandTests

    /// `counts` with its sums times `factor`, slowed by a loop per event so that its
    /// build lasts long enough to be watched; with `failAt`, failing at that `i`.
    static func slowCounts(factor: Int, failAt: Int? = nil) -> String {
        let fail = failAt.map { "if e.data.i == \($0) then error('no ' .. e.data.i) end " } ?? ""
        return """
            return {
              version = 1,
              init = function() return { n = 0, sum = 0 } end,
              on = { T = function(s, e) \(fail)for k = 1, 50000 do end s.n = s.n + 1; s.sum = s.sum + \(factor) * e.data.i end },
              columns = { n = "integer", sum = "integer" },
            }
            """
    }

    /// A workspace of `FollowCommandTests` with `events` events, replayed.
    static func replayed(_ dir: String, events: Int) throws {
        try F.workspace(dir)
        for file in F.files(dir, count: events / 1_000, events: 1_000) {
            #expect(try audit(["ingest", "--generate-ids", file], in: dir).status == 0)
        }
        #expect(try audit(["replay", "--projections", "mine"], in: dir).status == 0)
    }

    /// The live table's sums over the sum of the events' `i`: the factor of its code.
    static func factor(_ dir: String) throws -> Double {
        let sums = try sqlite("SELECT (SELECT sum(sum) FROM counts), (SELECT sum(json_extract(data, '$.i')) FROM events WHERE type = 'T')", dir + "/audit.db")
        let parts = sums.split(separator: "|").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return parts.count == 2 && parts[1] > 0 ? parts[0] / parts[1] : -1
    }

    static func building(_ dir: String) -> Bool {
        ((try? sqlite("SELECT count(*) FROM projection_builds WHERE name = 'counts'", dir + "/audit.db")) ?? "")
            .hasPrefix("1")
    }

    /// Whether the follower folds: an event appended now (i = 0, on a stream of its own,
    /// which changes no sum) reaches both tables. Only then has it read the folder's
    /// code, so that a file written afterwards is a change seen while following; written
    /// before the follower has started, the follower builds the folder's code at its
    /// start, without a word about a change (the tables are at the head before it runs,
    /// so `F.current` alone does not tell).
    static func following(_ dir: String) throws -> Bool {
        #expect(try audit(["append", "--stream", "warmup", "--type", "T", "--data", #"{"i":0}"#], in: dir).status == 0)
        return waitUntil(seconds: 30) { F.current(dir) }
    }

    static func append(_ dir: String, _ i: Int) throws {
        #expect(try audit(["append", "--stream", "a-\(i % 3)", "--type", "T", "--data", #"{"i":\#(i)}"#], in: dir).status == 0)
    }

    @Test("a file changed while appends arrive: reads stay current with the old code during the build, then its table equals a clean replay --rebuild of the new code")
    func changedWhileAppending() throws {
        let dir = TempDir()
        try Self.replayed(dir.path, events: 20_000)
        let follower = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        #expect(try Self.following(dir.path), "\(follower.stderr)")
        try Self.slowCounts(factor: 2).write(toFile: dir.path + "/mine/counts.lua", atomically: true, encoding: .utf8)
        #expect(waitUntil(seconds: 30) { Self.building(dir.path) }, "\(follower.stderr)")
        var i = 0, currentWhileBuilding = 0
        while Self.building(dir.path), i < 60 {
            try Self.append(dir.path, i)
            i += 1
            // A read brings nothing up itself (the follower holds the lock): it waits for
            // the follower, which keeps the live table at the head with its old code.
            let read = try audit(["state", "counts", "a-\((i - 1) % 3)", "--projections", "mine", "--wait", "10"], in: dir.path)
            #expect(read.status == 0, "\(read.stderr)")
            let expected = (0..<i).filter { $0 % 3 == (i - 1) % 3 }
            if Self.building(dir.path), try Self.factor(dir.path) == 1 {
                #expect(read.stdout.contains(#""n":\#(expected.count),"sum":\#(expected.reduce(0, +))"#), "\(read.stdout)")
                #expect(try F.position(dir.path) >= F.head(dir.path) - 1, "the live table lags during the build")
                currentWhileBuilding += 1
            }
        }
        #expect(currentWhileBuilding >= 3, "the build ended before reads were seen current during it: \(follower.stderr)")
        #expect(waitUntil(seconds: 120) { !Self.building(dir.path) && F.current(dir.path) }, "\(follower.stderr)")
        #expect(try Self.factor(dir.path) == 2)
        follower.send(SIGTERM)
        #expect(follower.wait(seconds: 30) == 0, "\(follower.stderr)")
        #expect(follower.stdout.contains(#"{"projection":"counts","status":"rebuilt""#), "\(follower.stdout)")
        #expect(follower.stderr.contains("projection counts: its code in mine/counts.lua changed"), "\(follower.stderr)")
        #expect(follower.stderr.contains("replaced its live table"), "\(follower.stderr)")
        #expect(try sqlite("SELECT count(*) FROM events WHERE type = 'CodeBuilt' AND stream = 'audit-code-counts'", dir.path + "/audit.db")
            .hasPrefix("2"))
        try F.expectEqualsCleanReplay(dir.path)
    }

    @Test("new code that fails keeps the old table current, says so on stderr and in its exit status; the other projection goes on")
    func failingNewCode() throws {
        let dir = TempDir()
        try Self.replayed(dir.path, events: 2_000)
        let follower = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        #expect(try Self.following(dir.path), "\(follower.stderr)")
        try Self.slowCounts(factor: 2, failAt: 700).write(toFile: dir.path + "/mine/counts.lua", atomically: true, encoding: .utf8)
        #expect(waitUntil(seconds: 60) { follower.stderr.contains("its new code was not built") }, "\(follower.stderr)")
        #expect(follower.stderr.contains("failed at seq 701"), "\(follower.stderr)")
        for i in 0..<5 { try Self.append(dir.path, i) }
        #expect(waitUntil(seconds: 30) { F.current(dir.path) }, "\(follower.stderr)")
        #expect(try Self.factor(dir.path) == 1)
        #expect(try sqlite("SELECT status FROM projection_builds WHERE name = 'counts'", dir.path + "/audit.db").hasPrefix("failed"))
        follower.send(SIGTERM)
        #expect(follower.wait(seconds: 30) == 65, "\(follower.stderr)")
        #expect(follower.stdout.contains(#"{"projection":"total","status":"updated""#), "\(follower.stdout)")
        #expect(follower.stdout.contains(#"{"projection":"counts","status":"failed""#), "\(follower.stdout)")
    }

    @Test("killed with -9 mid-build, then restarted: the build resumes from its checkpoint, the live table from its own; nothing lost or folded twice")
    func killedMidBuild() throws {
        let dir = TempDir()
        try Self.replayed(dir.path, events: 20_000)
        let first = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        #expect(try Self.following(dir.path), "\(first.stderr)")
        try Self.slowCounts(factor: 2).write(toFile: dir.path + "/mine/counts.lua", atomically: true, encoding: .utf8)
        let db = dir.path + "/audit.db"
        func buildPosition() -> Int { Int((try? sqlite("SELECT position FROM projection_builds WHERE name = 'counts'", db)) ?? "") ?? 0 }
        #expect(waitUntil(seconds: 60) { buildPosition() > 3_000 }, "\(first.stderr)")
        for i in 0..<3 { try Self.append(dir.path, i) }
        first.send(SIGKILL)
        #expect(first.wait(seconds: 30) == 128 + SIGKILL)
        let checkpoint = buildPosition()
        #expect(checkpoint > 0 && checkpoint < 20_000, "the build was not mid-way: \(checkpoint)")
        let started = try sqlite("SELECT started_at FROM projection_builds WHERE name = 'counts'", db)
        for i in 3..<6 { try Self.append(dir.path, i) }  // while no follower runs
        let second = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        // The live table catches up at once, with its old code, while the build goes on.
        #expect(waitUntil(seconds: 30) { (try? F.position(dir.path)) == (try? F.head(dir.path)) }, "\(second.stderr)")
        if Self.building(dir.path) {
            #expect(try Self.factor(dir.path) == 1)
            #expect(try sqlite("SELECT started_at FROM projection_builds WHERE name = 'counts'", db) == started)
        }
        #expect(waitUntil(seconds: 120) { !Self.building(dir.path) && F.current(dir.path) }, "\(second.stderr)")
        second.send(SIGTERM)
        #expect(second.wait(seconds: 30) == 0, "\(second.stderr)")
        // The build folded only the events after its checkpoint.
        let after = try sqlite("SELECT count(*) FROM events WHERE type = 'T' AND seq > \(checkpoint)", db).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(second.stdout.contains(#""projection":"counts","status":"rebuilt""#), "\(second.stdout)")
        #expect(second.stdout.contains(#""events":\#(after)}"#), "\(second.stdout) (\(after) events after seq \(checkpoint))")
        #expect(try Self.factor(dir.path) == 2)
        try F.expectEqualsCleanReplay(dir.path)
    }
}
