import Foundation
import Testing

/// `audit replay --follow` and `audit events --follow`, in real processes beside writers.
@Suite("Following the log")
struct FollowCommandTests {
    /// Counts and sums each stream's events and all of them: an event folded twice or
    /// lost changes a count.
    static let counts = """
        return {
          version = 1,
          init = function() return { n = 0, sum = 0 } end,
          on = { T = function(s, e) s.n = s.n + 1; s.sum = s.sum + e.data.i end },
          columns = { n = "integer", sum = "integer" },
        }
        """
    static let total = """
        return {
          version = 1,
          key = "global",
          init = function() return { n = 0, last = 0 } end,
          on = { T = function(s, e) s.n = s.n + 1; s.last = e.seq end },
        }
        """

    /// A database in `dir` and the projections folder `mine` with `counts` and `total`.
    static func workspace(_ dir: String) throws {
        #expect(try audit(["init", "--projections", "p", "--queries", "q"], in: dir).status == 0)
        try FileManager.default.createDirectory(atPath: dir + "/mine", withIntermediateDirectories: true)
        try counts.write(toFile: dir + "/mine/counts.lua", atomically: true, encoding: .utf8)
        try total.write(toFile: dir + "/mine/total.lua", atomically: true, encoding: .utf8)
    }

    /// JSONL files of `count` events each, for ingest: `file-<k>.jsonl`.
    static func files(_ dir: String, count: Int, events: Int, prefix: String = "file") -> [String] {
        (0..<count).map { k in
            let path = "\(dir)/\(prefix)-\(k).jsonl"
            let lines = (0..<events).map { i in #"{"stream":"s-\#((k * events + i) % 17)","type":"T","data":{"i":\#(k * events + i)}}"# }
            FileManager.default.createFile(atPath: path, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
            return path
        }
    }

    static func position(_ dir: String, _ name: String = "counts") throws -> Int64 {
        Int64(try sqlite("SELECT position FROM projections WHERE name = '\(name)'", dir + "/audit.db")) ?? -1
    }

    static func head(_ dir: String) throws -> Int64 {
        Int64(try sqlite("SELECT seq FROM chain_head", dir + "/audit.db")) ?? -1
    }

    /// The events of type T the writers appended (the log also holds a `CodeBuilt` record
    /// per build the followers promoted).
    static func appended(_ dir: String) throws -> Int64 {
        Int64(try sqlite("SELECT count(*) FROM events WHERE type = 'T'", dir + "/audit.db")) ?? -1
    }

    /// Whether both projections are at the head.
    static func current(_ dir: String) -> Bool {
        guard let head = try? head(dir) else { return false }
        return (try? position(dir)) == head && (try? position(dir, "total")) == head
    }

    /// The tables' rows, as a clean rebuild of a copy of the database has them too.
    static func expectEqualsCleanReplay(_ dir: String) throws {
        let dump = "SELECT key, state FROM counts ORDER BY key; SELECT state FROM total;"
        let followed = try sqlite(dump, dir + "/audit.db")
        #expect(try sqlite(".backup \(dir)/clean.db", dir + "/audit.db").isEmpty)
        let rebuilt = try audit(["--db", "clean.db", "replay", "--projections", "mine", "--rebuild"], in: dir)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(try sqlite(dump, dir + "/clean.db") == followed)
        let events = try appended(dir)
        let last = try sqlite("SELECT max(seq) FROM events WHERE type = 'T'", dir + "/audit.db")
        #expect(followed.contains(#"{"last":\#(last),"n":\#(events)}"#), "\(followed.suffix(80))")
    }

    @Test("two processes append and ingest while replay --follow runs: it keeps up, SIGTERM exits 0, the states equal a clean replay")
    func twoWriters() throws {
        let dir = TempDir()
        try Self.workspace(dir.path)
        let follower = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        // Built on the empty log (at the seq of its build's CodeBuilt record).
        #expect(waitUntil(seconds: 30) { ((try? Self.position(dir.path)) ?? -1) >= 0 }, "\(follower.stderr)")
        let files = Self.files(dir.path, count: 8, events: 250)
        let ingester = try BackgroundCommand([#"for f in file-*.jsonl; do "$AUDIT" ingest --generate-ids "$f" || exit 1; done"#], in: dir.path, shell: true)
        let appender = try BackgroundCommand(
            [#"i=0; while [ $i -lt 30 ]; do "$AUDIT" append --stream a-$((i % 3)) --type T --data "{\"i\":$i}" >/dev/null || exit 1; i=$((i + 1)); done"#],
            in: dir.path, shell: true)
        // It folds while they write, not only at the end.
        var seenMidway = false
        while ingester.process.isRunning || appender.process.isRunning {
            let position = try Self.position(dir.path)
            if position > 0, position < 2_030 { seenMidway = true }
            usleep(20_000)
        }
        #expect(ingester.wait() == 0, "\(ingester.stderr)")
        #expect(appender.wait() == 0, "\(appender.stderr)")
        #expect(files.count == 8)
        #expect(try Self.appended(dir.path) == 2_030)
        #expect(waitUntil(seconds: 30) { Self.current(dir.path) })
        #expect(seenMidway)
        follower.send(SIGTERM)
        #expect(follower.wait(seconds: 30) == 0, "\(follower.stderr)")
        let head = try Self.head(dir.path)
        #expect(follower.stdout.contains(#"{"projection":"counts","status":"rebuilt","position":\#(head),"events":2030}"#), "\(follower.stdout)")
        #expect(follower.stdout.contains(#""projection":"total""#))
        try Self.expectEqualsCleanReplay(dir.path)
    }

    @Test("a follower killed with -9 while events arrive, then restarted, loses nothing and folds nothing twice")
    func killedFollower() throws {
        let dir = TempDir()
        try Self.workspace(dir.path)
        _ = Self.files(dir.path, count: 20, events: 500)
        let ingester = try BackgroundCommand(
            [#"for f in file-*.jsonl; do "$AUDIT" ingest --generate-ids "$f" >/dev/null || exit 1; sleep 0.2; done"#], in: dir.path, shell: true)
        for round in 0..<3 {
            let follower = try BackgroundCommand(["replay", "--follow", "--projections", "mine", "--parallel", "2"], in: dir.path)
            let start = max(0, try Self.position(dir.path))
            // Killed once it has moved on since its start, while the ingest goes on.
            #expect(waitUntil(seconds: 30) { (try? Self.position(dir.path)) ?? -1 > start }, "round \(round): \(follower.stderr)")
            usleep(UInt32(37_000 * (round + 1)))
            follower.send(SIGKILL)
            #expect(follower.wait(seconds: 30) == 128 + SIGKILL)
        }
        #expect(ingester.wait() == 0, "\(ingester.stderr)")
        #expect(try Self.appended(dir.path) == 10_000)
        let follower = try BackgroundCommand(["replay", "--follow", "--projections", "mine"], in: dir.path)
        #expect(waitUntil(seconds: 30) { Self.current(dir.path) })
        follower.send(SIGINT)
        #expect(follower.wait(seconds: 30) == 0, "\(follower.stderr)")
        try Self.expectEqualsCleanReplay(dir.path)
    }

    @Test("replay --follow on a database the user may only read exits 1 saying why")
    func readOnlyRefused() throws {
        let dir = TempDir()
        try Self.workspace(dir.path)
        chmod(dir.path, 0o755)
        let result = try ReadOnlyCommandTests.run(["replay", "--follow", "--projections", "mine"], in: dir.path, uid: ReadOnlyCommandTests.nobody)
        #expect(result.status == 1)
        #expect(result.stderr.contains("the database at audit.db is read-only"), "\(result.stderr)")
        #expect(result.stderr.contains("audit replay --follow keeps the projections' tables in it current, so it must write it"))
        #expect(result.stdout.isEmpty)
    }

    @Test("events --follow prints the selected events as they are committed, stored ones first from --from-seq; SIGTERM exits 0")
    func eventsFollow() throws {
        let dir = TempDir()
        try Self.workspace(dir.path)
        for i in 0..<4 { try audit(["append", "--stream", "s-\(i % 2)", "--type", "T", "--data", #"{"i":\#(i)}"#], in: dir.path) }
        let fromStart = try BackgroundCommand(["events", "--follow", "--stream", "s-1", "--from-seq", "3"], in: dir.path)
        let fromNow = try BackgroundCommand(["events", "--follow", "--type", "T"], in: dir.path)
        #expect(waitUntil(seconds: 20) { fromStart.stdout.split(separator: "\n").count == 1 }, "\(fromStart.stderr)")
        usleep(200_000)  // fromNow has read the head by now
        for i in 4..<10 {
            let type = i == 6 ? "Other" : "T"
            try audit(["append", "--stream", "s-\(i % 2)", "--type", type, "--data", #"{"i":\#(i)}"#], in: dir.path)
        }
        let expected = try audit(["events", "--stream", "s-1", "--from-seq", "3"], in: dir.path).stdout
        #expect(expected.split(separator: "\n").count == 4)
        #expect(waitUntil(seconds: 20) { fromStart.stdout == expected }, "\(fromStart.stdout)")
        let new = try audit(["events", "--type", "T", "--from-seq", "5"], in: dir.path).stdout
        #expect(waitUntil(seconds: 20) { fromNow.stdout == new }, "\(fromNow.stdout)")
        fromStart.send(SIGTERM)
        fromNow.send(SIGINT)
        #expect(fromStart.wait(seconds: 20) == 0, "\(fromStart.stderr)")
        #expect(fromNow.wait(seconds: 20) == 0, "\(fromNow.stderr)")
        #expect(fromStart.stderr.isEmpty && fromNow.stderr.isEmpty)
    }

    @Test("events --follow ends by itself at --limit and --to-seq, and quietly when its reader goes away while nothing comes")
    func eventsFollowEnds() throws {
        let dir = TempDir()
        try Self.workspace(dir.path)
        try audit(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path)
        let limited = try BackgroundCommand(["events", "--follow", "--limit", "2", "--from-seq", "1"], in: dir.path)
        let bounded = try BackgroundCommand(["events", "--follow", "--to-seq", "3", "--from-seq", "2"], in: dir.path)
        let piped = try BackgroundCommand([#""$AUDIT" events --follow --from-seq 1 | head -n 1"#], in: dir.path, shell: true)
        #expect(piped.wait(seconds: 20) == 0, "the follower did not notice that head ended")
        #expect(piped.stdout.contains(#""seq":1"#))
        #expect(piped.stderr.isEmpty, "\(piped.stderr)")
        for _ in 0..<3 { try audit(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path) }
        #expect(limited.wait(seconds: 20) == 0)
        #expect(limited.stdout.split(separator: "\n").map { $0.prefix(9) } == [#"{"seq":1,"#, #"{"seq":2,"#])
        #expect(bounded.wait(seconds: 20) == 0)
        #expect(bounded.stdout.split(separator: "\n").map { $0.prefix(9) } == [#"{"seq":2,"#, #"{"seq":3,"#])
        let usage = try audit(["events", "--follow", "--format", "csv"], in: dir.path)
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("--follow prints JSONL"))
    }
}
