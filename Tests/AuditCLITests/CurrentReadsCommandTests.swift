import Foundation
import Testing

/// Every answer is current or says it is not (DECISIONS 14): `query`, `state` and
/// `export --query` fold the projections they read forward first.
@Suite("Reads are current")
struct CurrentReadsCommandTests {
    static let counter = """
        return {
          version = 1,
          on = {
            Paid = function(s, e) s.paid = (s.paid or 0) + e.data.amount end,
            Poison = function(s, e) error("poisoned") end,
          },
          columns = { paid = "integer" },
        }
        """

    /// A workspace whose `balances` projection was replayed over 3 events.
    func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try Self.counter.write(toFile: dir.path + "/projections/balances.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path).status == 0)
        for amount in [1, 2, 3] { try pay(dir, "a", amount) }
        #expect(try audit(["replay"], in: dir.path).status == 0)
        return dir
    }

    func pay(_ dir: TempDir, _ stream: String, _ amount: Int, type: String = "Paid") throws {
        let appended = try audit(["append", "--stream", stream, "--type", type, "--data", #"{"amount":\#(amount)}"#], in: dir.path)
        #expect(appended.status == 0, "\(appended.stderr)")
    }

    func position(_ dir: TempDir) throws -> String {
        try sqlite("SELECT position FROM projections WHERE name = 'balances'", dir.path + "/audit.db")
    }

    func head(_ dir: TempDir) throws -> String {
        try sqlite("SELECT seq FROM chain_head", dir.path + "/audit.db")
    }

    @Test("after an append, state and query answer with it, silently, and the table is at the head")
    func caughtUp() throws {
        let dir = try workspace()
        try pay(dir, "a", 10)
        let state = try audit(["state", "balances", "a"], in: dir.path)
        #expect(state.status == 0 && state.stdout.contains(#""paid":16"#) && state.stderr.isEmpty, "\(state.stdout)\(state.stderr)")
        #expect(try position(dir) == (try head(dir)))
        try pay(dir, "b", 5)
        let query = try audit(["query", "--sql", "SELECT sum(paid) AS total FROM balances", "--format", "csv"], in: dir.path)
        #expect(query.status == 0 && query.stdout == "total\n21\n" && query.stderr.isEmpty, "\(query.stdout)\(query.stderr)")
        // A query that reads no projection leaves them alone.
        try pay(dir, "b", 1)
        #expect(try audit(["query", "--sql", "SELECT count(*) FROM events"], in: dir.path).status == 0)
        #expect(try position(dir) != (try head(dir)))
    }

    @Test("--no-catch-up answers from the table as it is and says how far it is behind")
    func noCatchUp() throws {
        let dir = try workspace()
        let before = try position(dir)
        try pay(dir, "a", 10)
        let state = try audit(["state", "balances", "a", "--no-catch-up"], in: dir.path)
        #expect(state.status == 0 && state.stdout.contains(#""paid":6"#), "\(state.stdout)")
        #expect(state.stderr.contains("balances is at seq \(before) of \(try head(dir))"), "\(state.stderr)")
        #expect(try position(dir) == before)
        let query = try audit(["query", "--sql", "SELECT paid FROM balances", "--no-catch-up", "--format", "csv"], in: dir.path)
        #expect(query.stdout == "paid\n6\n" && query.stderr.contains("balances is at seq \(before) of"), "\(query.stderr)")
    }

    @Test("another process holding the replay lock: the read waits at most --wait seconds, says who holds it, and exits 1 naming how far each is")
    func lockHeld() throws {
        let dir = try workspace()
        let before = try position(dir)
        try pay(dir, "a", 10)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [dir.path + "/audit.db-replay.lock", "sleep", "30"]
        try holder.run()
        defer { holder.terminate() }
        Thread.sleep(forTimeInterval: 0.3)  // flock has the lock
        let started = Date()
        let read = try audit(["query", "--sql", "SELECT paid FROM balances", "--wait", "1"], in: dir.path)
        let took = Date().timeIntervalSince(started)
        #expect(read.status == 1, "\(read.stdout)\(read.stderr)")
        #expect(read.stderr.contains("waiting for the replay that holds the lock"), "\(read.stderr)")
        #expect(read.stderr.contains("balances at seq \(before) of \(try head(dir))"), "\(read.stderr)")
        #expect(read.stdout.isEmpty)
        #expect(took >= 1 && took < 10)
        // --no-catch-up does not wait.
        #expect(try audit(["state", "balances", "--no-catch-up"], in: dir.path).status == 0)
        holder.terminate()
        holder.waitUntilExit()
        let freed = try audit(["state", "balances", "a"], in: dir.path)
        #expect(freed.status == 0 && freed.stdout.contains(#""paid":16"#))
    }

    @Test("a read-only open folds the lag into a scratch database and leaves the store as it was")
    func readOnly() throws {
        let dir = try workspace()
        let before = try position(dir)
        try pay(dir, "a", 10)
        try pay(dir, "c", 7)
        let db = dir.path + "/audit.db"
        let tables = try sqlite("SELECT group_concat(name) FROM sqlite_master", db)
        let state = try audit(["--read-only", "state", "balances", "a"], in: dir.path)
        #expect(state.status == 0 && state.stdout.contains(#""paid":16"#) && state.stderr.isEmpty, "\(state.stdout)\(state.stderr)")
        let query = try audit(["--read-only", "query", "--sql", "SELECT key, paid FROM balances ORDER BY key", "--format", "csv"], in: dir.path)
        #expect(query.status == 0 && query.stdout == "key,paid\na,16\nc,7\n", "\(query.stdout)\(query.stderr)")
        // The other tables (events) are the store's.
        let events = try audit(["--read-only", "query", "--sql", "SELECT count(*) AS n FROM events JOIN balances ON balances.key = events.stream", "--format", "csv"], in: dir.path)
        #expect(events.status == 0 && events.stdout.hasPrefix("n\n5"), "\(events.stdout)\(events.stderr)")
        #expect(try position(dir) == before)
        #expect(try sqlite("SELECT group_concat(name) FROM sqlite_master", db) == tables)
        #expect(try sqlite("SELECT state FROM balances WHERE key = 'a'", db) == #"{"paid":6}"#)
        // Replay is refused on a read-only open.
        let replay = try audit(["--read-only", "replay"], in: dir.path)
        #expect(replay.status == 64 && replay.stderr.contains("--read-only is for reads"), "\(replay.stderr)")
    }

    @Test("a failed projection exits 65 with its error (seq, handler, file:line), unless --stale-ok, which says so")
    func failed() throws {
        let dir = try workspace()
        try pay(dir, "a", 0, type: "Poison")
        let seq = try head(dir)
        // The read's own catch-up finds it.
        let read = try audit(["state", "balances", "a"], in: dir.path)
        #expect(read.status == 65, "\(read.stdout)\(read.stderr)")
        #expect(read.stderr.contains("failed at seq \(seq)") && read.stderr.contains(#"handler "Poison""#), "\(read.stderr)")
        #expect(read.stderr.contains("balances.lua:5:") && read.stderr.contains("--stale-ok"), "\(read.stderr)")
        #expect(read.stdout.isEmpty)
        // Recorded: the next read fails the same way without folding.
        let query = try audit(["query", "--sql", "SELECT paid FROM balances"], in: dir.path)
        #expect(query.status == 65 && query.stderr.contains("failed at seq \(seq)"), "\(query.stderr)")
        let stale = try audit(["query", "--sql", "SELECT paid FROM balances", "--stale-ok", "--format", "csv"], in: dir.path)
        #expect(stale.status == 0 && stale.stdout == "paid\n6\n", "\(stale.stdout)\(stale.stderr)")
        #expect(stale.stderr.contains("balances is failed") && stale.stderr.contains("last good state"), "\(stale.stderr)")
        // explain is how a failure is looked into: its own fold shows it.
        let explained = try audit(["explain", "balances", "a"], in: dir.path)
        #expect(explained.status == 65 && explained.stderr.contains("balances.lua:5: poisoned") && !explained.stderr.contains("--stale-ok"), "\(explained.stderr)")
    }

    @Test("changed code: the read answers from the table, kept current with the code that built it, and says so; --strict-code exits 65")
    func codeChanged() throws {
        let dir = try workspace()
        try Self.counter.replacingOccurrences(of: "s.paid = (s.paid or 0) + e.data.amount", with: "s.paid = 1000")
            .write(toFile: dir.path + "/projections/balances.lua", atomically: true, encoding: .utf8)
        try pay(dir, "a", 10)
        let read = try audit(["state", "balances", "a"], in: dir.path)
        #expect(read.status == 0 && read.stdout.contains(#""paid":16"#), "\(read.stdout)\(read.stderr)")
        #expect(read.stderr.contains("differs from the code that built its table") && read.stderr.contains("audit replay"), "\(read.stderr)")
        #expect(try position(dir) == (try head(dir)))
        let strict = try audit(["query", "--sql", "SELECT paid FROM balances", "--strict-code"], in: dir.path)
        #expect(strict.status == 65 && strict.stderr.contains("--strict-code"), "\(strict.stderr)")
        // Only replay rebuilds.
        #expect(try audit(["replay"], in: dir.path).stdout.contains(#""status":"rebuilt""#))
        let rebuilt = try audit(["state", "balances", "a"], in: dir.path)
        #expect(rebuilt.stdout.contains(#""paid":1000"#) && rebuilt.stderr.isEmpty, "\(rebuilt.stderr)")
    }

    @Test("a projection never built: the read says so and how to build it, not 'no such table'")
    func neverBuilt() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try Self.counter.write(toFile: dir.path + "/projections/balances.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path).status == 0)
        try pay(dir, "a", 1)
        for read in [["query", "--sql", "SELECT * FROM balances"], ["state", "balances"]] {
            let result = try audit(read, in: dir.path)
            #expect(result.status == 65, "\(read): \(result.stderr)")
            #expect(result.stderr.contains("never been built") && result.stderr.contains("`audit replay balances`"), "\(result.stderr)")
            #expect(!result.stderr.contains("no such table"))
        }
        // A table that is no projection is still SQLite's error.
        let other = try audit(["query", "--sql", "SELECT * FROM nothing_here"], in: dir.path)
        #expect(other.status == 65 && other.stderr.contains("no such table: nothing_here"))
    }
}
