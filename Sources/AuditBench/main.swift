import ArgumentParser
import Foundation

/// `audit-bench`: the repo's benchmarks. Each measured phase runs in a child process
/// (so its peak memory is its own), phases alternate, and medians are reported.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-bench",
        abstract: "Benchmarks of the audit engine against its baselines.",
        subcommands: [IngestCommand.self, ChildEngineIngest.self, ChildBareInsert.self])
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
                print("run \(run)  " + m.name.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: " %9.0f events/s  %6.2f s  peak %5.0f MB", m.eventsPerSecond, m.seconds, m.peakRSSMB))
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
