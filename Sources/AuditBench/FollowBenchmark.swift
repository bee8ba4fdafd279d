import ArgumentParser
import AuditEngine
import Foundation
import GRDBSQLite

/// `audit-bench follow`: `audit replay --follow` as it runs beside writers.
///
/// 1. Latency: while it follows a fine_balances-like projection and order_totals, this
///    process appends `--rate` events/s in transactions of `--per-transaction`; the time
///    from each append's commit to its effect in each table, read directly with SQLite
///    (the catalog position, committed with the states), every millisecond.
/// 2. Lag: the same, while a second process ingests 10,000-event files as fast as it
///    can; the follower's lag (head minus position) sampled every 20 ms, and the ingest rate.
/// 3. Catch-up: from a backlog of `--backlog` events, `replay --follow` until both
///    tables reach the head vs `replay`, each from a copy of the same database, alternated.
struct FollowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow", abstract: "replay --follow: commit-to-table latency, lag under a concurrent ingest, catch-up vs replay.")

    @Option(help: "Seconds of each of the latency and lag phases.") var seconds = 20.0
    @Option(help: "Events appended per second.") var rate = 500
    @Option(help: "Events per appended transaction.") var perTransaction = 5
    @Option(help: "Events in the catch-up backlog.") var backlog = 2_000_000
    @Option(help: "Measured runs of the catch-up (medians are reported).") var runs = 2
    @Option(help: "Scratch directory (default: a new temporary one).") var workdir: String?

    func run() throws {
        let dir = workdir ?? NSTemporaryDirectory() + "audit-bench-follow-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/projections", withIntermediateDirectories: true)
        for (name, source) in FollowWorkload.projections {
            try source.write(toFile: "\(dir)/projections/\(name).lua", atomically: true, encoding: .utf8)
        }
        let live = try FollowLatency(dir: dir, rate: rate, perTransaction: perTransaction, seconds: seconds)
        try live.run()
        try FollowCatchUp(dir: dir, backlog: backlog, runs: runs).run()
    }
}

/// The events and projections of the benchmark.
enum FollowWorkload {
    static let fineBalances = """
        return {
          version = 1,
          streams = "fine-*",
          init = function() return { amount_cents = 0, paid_cents = 0, balance_cents = 0, status = "open" } end,
          on = {
            ["Create Fine"] = function(s, e) s.amount_cents = e.data.amount_cents; s.balance_cents = s.amount_cents - s.paid_cents end,
            ["Add penalty"] = function(s, e) s.amount_cents = s.amount_cents + e.data.amount_cents; s.balance_cents = s.amount_cents - s.paid_cents end,
            Payment = function(s, e)
              s.paid_cents = s.paid_cents + e.data.amount_cents
              s.balance_cents = s.amount_cents - s.paid_cents
              if s.balance_cents <= 0 then s.status = "paid" end
            end,
          },
          columns = { balance_cents = "integer", status = "text" },
        }
        """
    static let projections = ["fine_balances": fineBalances, "order_totals": ReplayBenchmark.projection]
    static let names = projections.keys.sorted()

    /// Event `i` of a run named `tag`: orders and fines alternating, over 50,000 orders
    /// and 20,000 fines; with `ids`, an id from `tag` and `i`.
    static func line(_ i: Int, tag: String, ids: Bool = true) -> String {
        let id = ids ? #""id":"\#(tag)-\#(i)","# : ""
        let k = i / 2
        if i % 2 == 0 {
            let stream = "order-\(k % 50_000)"
            if k < 50_000 {
                return #"{\#(id)"stream":"\#(stream)","type":"OrderPlaced","data":{"customer":"c\#(k % 1000)","amount":\#(1 + k % 500)}}"#
            }
            if k % 5 == 0 { return #"{\#(id)"stream":"\#(stream)","type":"OrderCancelled","data":{}}"# }
            return #"{\#(id)"stream":"\#(stream)","type":"ItemAdded","data":{"qty":\#(1 + k % 3),"price":\#(1 + k % 90)}}"#
        }
        let stream = "fine-\(k % 20_000)"
        let type = k < 20_000 ? "Create Fine" : (k % 3 == 0 ? "Add penalty" : "Payment")
        return #"{\#(id)"stream":"\#(stream)","type":"\#(type)","data":{"amount_cents":\#(100 + k % 900)}}"#
    }

    /// The `audit` executable beside this one.
    static var audit: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("audit").path
    }

    /// Starts `audit ARGUMENTS` with its output in files of `dir` (named `log`).
    static func start(_ arguments: [String], dir: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: audit)
        process.arguments = arguments
        FileManager.default.createFile(atPath: "\(dir)/\(log).out", contents: nil)
        FileManager.default.createFile(atPath: "\(dir)/\(log).err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: "\(dir)/\(log).out")
        process.standardError = FileHandle(forWritingAtPath: "\(dir)/\(log).err")
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Stops a follower with SIGTERM and checks that it exits 0.
    static func stop(_ process: Process, dir: String, log: String) throws {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        guard process.terminationStatus == 0, process.terminationReason == .exit else {
            let err = (try? String(contentsOfFile: "\(dir)/\(log).err", encoding: .utf8)) ?? ""
            throw BenchError("replay --follow exited with \(process.terminationStatus) after SIGTERM: \(err)")
        }
    }
}

/// A read-only SQLite connection of the benchmark's own, for reading positions directly.
final class PositionReader {
    private var db: OpaquePointer?
    private var positions: OpaquePointer?
    private var head: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { throw BenchError("cannot open \(path)") }
        sqlite3_busy_timeout(db, 5_000)
        sqlite3_prepare_v2(db, "SELECT name, position FROM projections ORDER BY name", -1, &positions, nil)
        sqlite3_prepare_v2(db, "SELECT seq FROM chain_head", -1, &head, nil)
    }

    deinit {
        sqlite3_finalize(positions)
        sqlite3_finalize(head)
        sqlite3_close(db)
    }

    /// Each projection's position, by name.
    func read() -> [String: Int64] {
        defer { sqlite3_reset(positions) }
        var result: [String: Int64] = [:]
        while sqlite3_step(positions) == SQLITE_ROW {
            result[String(cString: sqlite3_column_text(positions, 0))] = sqlite3_column_int64(positions, 1)
        }
        return result
    }

    func headSeq() -> Int64 {
        defer { sqlite3_reset(head) }
        return sqlite3_step(head) == SQLITE_ROW ? sqlite3_column_int64(head, 0) : 0
    }
}

/// Percentiles of samples.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}
