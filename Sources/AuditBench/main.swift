import ArgumentParser
import AuditEngine
import Foundation

/// `audit-bench`: the repo's benchmarks. Each measured phase runs in a child process
/// (so its peak memory is its own), phases alternate, and medians are reported.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-bench",
        abstract: "Benchmarks of the audit engine against its baselines.",
        subcommands: [
            IngestCommand.self, ReplayCommand.self, AsOfCommand.self, SeriesCommand.self, FollowCommand.self, ExamplesCommand.self,
            VerifyCommand.self, VerifyProjectionsCommand.self, CompareCommand.self, CatchUpCommand.self,
            ChildAsOf.self, ChildSeries.self, ChildEngineIngest.self, ChildBareInsert.self, ChildEngineReplay.self, ChildExampleReplay.self,
            ChildVerifyProjections.self,
        ])
}

struct WorkloadOptions: ParsableArguments {
    @Option(help: "Events in the reference workload.") var events = 2_000_000
    @Option(help: "Workload seed.") var seed: UInt64 = 42
    @Option(help: "Measured runs of each phase (medians are reported).") var runs = 3
    @Option(help: "Scratch directory (default: a new temporary one).") var workdir: String?

    func directory() throws -> String {
        let dir = workdir ?? NSTemporaryDirectory() + "audit-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func workloadFile(in dir: String) throws -> String {
        let path = "\(dir)/orders-\(events)-\(seed).jsonl"
        if !FileManager.default.fileExists(atPath: path) {
            let seconds = try Measure.time { try Workload(events: events, seed: seed).write(to: path) }
            print("generated \(events) events over \(max(1, events / 4)) streams in \(String(format: "%.1f", seconds)) s: \(path)")
        }
        return path
    }

    /// A database in `dir` holding the workload `file`, ingested once and kept for later runs.
    func database(_ prefix: String, in dir: String, from file: String) throws -> String {
        let db = "\(dir)/\(prefix)-\(events)-\(seed).db"
        if !FileManager.default.fileExists(atPath: db) {
            let store = try EventStore(path: db, create: true)
            let seconds = try Measure.time { try store.ingest(path: file) }
            print(String(format: "ingested the workload in %.1f s: %@", seconds, db))
        }
        return db
    }

    /// The workload's database `prefix` (see `database`), replayed from seq 1 with
    /// snapshots at the default policy, as a user's replay takes them; the replay is
    /// printed as run 0 and returned.
    func replayedDatabase(_ prefix: String) throws -> (dir: String, file: String, db: String, replay: Measurement) {
        let dir = try directory()
        let file = try workloadFile(in: dir)
        let db = try database(prefix, in: dir, from: file)
        let replay = try Measure.child(["_replay", db, dir, "1"])
        Measure.printRun(0, replay)
        return (dir, file, db, replay)
    }
}

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Ingest of the reference workload vs a bare SQLite insert of the same rows.")

    @OptionGroup var workload: WorkloadOptions

    func run() throws {
        let dir = try workload.directory()
        let file = try workload.workloadFile(in: dir)
        var engine: [Measurement] = [], bare: [Measurement] = []
        for run in 1...workload.runs {
            for (name, list) in [("_bare", 0), ("_engine", 1)] {
                let db = "\(dir)/bench-\(name)-\(run).db"
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
                let m = try Measure.child([name, file, db])
                Measure.printRun(run, m)
                if list == 0 { bare.append(m) } else { engine.append(m) }
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
            }
        }
        let engineRate = Measure.median(engine.map(\.eventsPerSecond))
        let bareRate = Measure.median(bare.map(\.eventsPerSecond))
        print("")
        print("ingest, \(workload.events) events, medians of \(workload.runs) runs:")
        print(String(format: "  engine ingest (JSONL, validation, hash chain): %9.0f events/s   peak %.0f MB", engineRate, engine.map(\.peakRSSMB).max()!))
        print(String(format: "  bare SQLite insert (pre-parsed rows)        : %9.0f events/s", bareRate))
        print(String(format: "  ratio engine / bare: %.2f   (targets: >= 100000 events/s, ratio >= 0.85, peak < 300 MB)", engineRate / bareRate))
    }
}

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Sequential replay of order_totals vs the hand-rolled lua5.4 + lua-cjson baseline.")

    @OptionGroup var workload: WorkloadOptions

    func run() throws {
        let dir = try workload.directory()
        let file = try workload.workloadFile(in: dir)
        let db = try workload.database("replay", in: dir, from: file)
        var engine: [Measurement] = [], parallel: [Measurement] = [], baseline: [Measurement] = [], bare: [Measurement] = []
        for run in 1...workload.runs {
            let b = try ReplayBenchmark.runBaseline(file: file, dir: dir)
            baseline.append(b)
            Measure.printRun(run, b)
            let e = try Measure.child(["_replay", db, dir, "1"])
            engine.append(e)
            Measure.printRun(run, e)
            let p = try Measure.child(["_replay", db, dir, "2"])
            parallel.append(p)
            Measure.printRun(run, p)
            let n = try Measure.child(["_replay", db, dir, "1", "order_totals", "--no-snapshots"])
            bare.append(n)
            Measure.printRun(run, n)
        }
        let engineRate = Measure.median(engine.map(\.eventsPerSecond))
        let parallelRate = Measure.median(parallel.map(\.eventsPerSecond))
        let baselineRate = Measure.median(baseline.map(\.eventsPerSecond))
        print("")
        print("replay of order_totals from seq 1, \(workload.events) events, medians of \(workload.runs) runs:")
        print(String(format: "  engine, sequential (from SQLite, sandboxed VM, states written): %9.0f events/s   peak %.0f MB", engineRate, engine.map(\.peakRSSMB).max()!))
        print(String(format: "  engine, --parallel 2                                          : %9.0f events/s   peak %.0f MB", parallelRate, parallel.map(\.peakRSSMB).max()!))
        let bareRate = Measure.median(bare.map(\.eventsPerSecond))
        print(String(format: "  engine, sequential, --no-snapshots                            : %9.0f events/s   peak %.0f MB", bareRate, bare.map(\.peakRSSMB).max()!))
        print(String(format: "  baseline lua5.4 + lua-cjson over the JSONL                    : %9.0f events/s", baselineRate))
        // On a machine whose speed drifts, the ratio within each run (its phases ran
        // back to back) is steadier than the ratio of medians taken over all runs.
        func paired(_ a: [Measurement], _ b: [Measurement]) -> Double {
            Measure.median(zip(a, b).map { $0.eventsPerSecond / $1.eventsPerSecond })
        }
        print("  ratios: of the medians above; in brackets, the median of each run's own ratio")
        print(String(format: "  sequential / baseline: %.2f  [%.2f]   (target: >= 3.0)", engineRate / baselineRate, paired(engine, baseline)))
        print(String(format: "  parallel / sequential: %.2f  [%.2f]   (target: >= 1.7)", parallelRate / engineRate, paired(parallel, engine)))
        print(String(format: "  parallel / baseline  : %.2f  [%.2f]   (target: >= 6.0)", parallelRate / baselineRate, paired(parallel, baseline)))
        print(String(format: "  snapshots' cost: sequential with them / without: %.2f  [%.2f] of the speed", engineRate / bareRate, paired(engine, bare)))
        print("  where the replay's own thread spent its time (medians; reading and writing run on threads of their own):")
        for (label, runs) in [("sequential", engine), ("--parallel 2", parallel)] {
            var median = ReplayTimings()
            func of(_ part: (ReplayTimings) -> Double) -> Double { Measure.median(runs.compactMap { $0.timings.map(part) }) }
            (median.folding, median.serializing, median.waitingForEvents) = (of(\.folding), of(\.serializing), of(\.waitingForEvents))
            (median.waitingForWriter, median.lastCheckpoint) = (of(\.waitingForWriter), of(\.lastCheckpoint))
            print("    " + label.padding(toLength: 13, withPad: " ", startingAt: 0) + median.summary
                + String(format: ", of %.2f s", Measure.median(runs.map(\.seconds))))
        }
        print("  engine result  : \(engine.last!.summary)")
        print("  baseline result: \(baseline.last!.summary)")
        let equal = (engine + parallel + bare).allSatisfy { $0.summary == baseline.last!.summary }
        print("  results equal  : \(equal ? "yes" : "NO")")
        print("")
        print("other projections over the same events, medians of \(workload.runs) runs:")
        for name in ["cancelled_only", "global_merge"] {
            for workers in [1, 2] {
                let runs = try (1...workload.runs).map { _ in try Measure.child(["_replay", db, dir, String(workers), name]) }
                let m = runs[0]
                print("  " + m.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + String(format: " %9.0f events/s   peak %.0f MB", Measure.median(runs.map(\.eventsPerSecond)), runs.map(\.peakRSSMB).max()!))
            }
        }
    }
}

struct ChildEngineReplay: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_replay", shouldDisplay: false)
    @Argument var db: String
    @Argument var dir: String
    @Argument var parallel: Int = 1
    @Argument var projection: String = "order_totals"
    @Flag(name: .customLong("no-snapshots")) var noSnapshots = false
    func run() throws {
        Measure.report(try ReplayBenchmark.engine(db: db, dir: dir, parallel: parallel, name: projection, snapshots: !noSnapshots))
    }
}

struct ChildEngineIngest: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_engine", shouldDisplay: false)
    @Argument var file: String
    @Argument var db: String
    func run() throws { Measure.report(try IngestBenchmark.engine(file: file, db: db)) }
}

struct ChildBareInsert: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_bare", shouldDisplay: false)
    @Argument var file: String
    @Argument var db: String
    func run() throws { Measure.report(try IngestBenchmark.bare(file: file, db: db)) }
}

Bench.main()
