import ArgumentParser
import AuditEngine
import Foundation

/// The repository's example projections (modules, local helpers, real event shapes) on
/// the real logs of docs/data, copied under fresh stream and event ids until the replay
/// is long enough to time.
enum ExamplesBenchmark {
    /// A projection, its log and how many copies of it make the workload.
    static let cases = [
        (projection: "fine_balances", log: "road-fines.jsonl", copies: 2_000),
        (projection: "permit_cases", log: "permit-receipts.jsonl", copies: 100),
    ]

    /// Writes `copies` copies of the log at `source`, copy c with "-c" appended to
    /// every stream and id, interleaved line by line (as the events of many cases are).
    static func write(source: String, copies: Int, to path: String) throws {
        let lines = try String(contentsOfFile: source, encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(String($0)) }
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw BenchError("cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var out: [UInt8] = []
        for line in lines {
            guard case .object(let members) = line else { throw BenchError("\(source): a line is not an object") }
            for copy in 0..<copies {
                let renamed = members.map { member -> JSONMember in
                    guard member.key == "stream" || member.key == "id", case .string(let text) = member.value else { return member }
                    return JSONMember(member.key, .string("\(text)-\(copy)"))
                }
                CanonicalJSON.write(.object(renamed), into: &out)
                out.append(UInt8(ascii: "\n"))
            }
            if out.count > 1 << 20 {
                handle.write(Data(out))
                out.removeAll(keepingCapacity: true)
            }
        }
        handle.write(Data(out))
    }

    /// Child: rebuilds `name` (from `repo`/projections, with its lib) in `db`.
    static func replay(db: String, repo: String, name: String, parallel: Int) throws -> Measurement {
        let store = try EventStore(path: db)
        let projection = try Projection.load(file: "\(repo)/projections/\(name).lua", libDirectory: "\(repo)/projections/lib")
        var options = ReplayOptions()
        options.rebuild = true
        options.parallel = parallel
        options.useSnapshots = false
        var outcome: [ReplayOutcome] = []
        let seconds = try Measure.time { outcome = try store.replay([projection], options: options) }
        guard case .rebuilt = outcome.first?.status else { throw BenchError("replay did not finish: \(outcome)") }
        let label = "\(name) " + (parallel == 1 ? "sequential" : "--parallel \(parallel)")
        return Measurement(name: label, events: Int(try store.head().seq), seconds: seconds, peakRSSMB: Measure.peakRSSMB(), timings: outcome.first?.timings)
    }
}

struct ExamplesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "examples", abstract: "Replay of the example projections (fine_balances, permit_cases) over copies of the real logs.")

    @Option(help: "The repository (its projections/ and docs/data/).") var repo = "."
    @Option(help: "Measured runs of each phase (medians are reported).") var runs = 5
    @Option(help: "Scratch directory (default: a new temporary one).") var workdir: String?

    func run() throws {
        let dir = workdir ?? NSTemporaryDirectory() + "audit-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for example in ExamplesBenchmark.cases {
            let file = "\(dir)/\(example.projection)-\(example.copies).jsonl"
            let db = "\(dir)/\(example.projection)-\(example.copies).db"
            if !FileManager.default.fileExists(atPath: db) {
                try ExamplesBenchmark.write(source: "\(repo)/docs/data/\(example.log)", copies: example.copies, to: file)
                try EventStore(path: db, create: true).ingest(path: file)
            }
            var measured: [Int: [Measurement]] = [1: [], 2: []]
            for run in 1...runs {
                for parallel in [1, 2] {
                    let m = try Measure.child(["_replay_example", db, repo, example.projection, String(parallel)])
                    Measure.printRun(run, m)
                    measured[parallel]!.append(m)
                }
            }
            for parallel in [1, 2] {
                let runs = measured[parallel]!
                print("  " + runs[0].name.padding(toLength: 32, withPad: " ", startingAt: 0)
                    + String(format: " %9.0f events/s   median of %d runs, %d events, peak %.0f MB",
                             Measure.median(runs.map(\.eventsPerSecond)), runs.count, runs[0].events, runs.map(\.peakRSSMB).max()!))
            }
        }
    }
}

struct ChildExampleReplay: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_replay_example", shouldDisplay: false)
    @Argument var db: String
    @Argument var repo: String
    @Argument var projection: String
    @Argument var parallel: Int = 1
    func run() throws {
        Measure.report(try ExamplesBenchmark.replay(db: db, repo: repo, name: projection, parallel: parallel))
    }
}
