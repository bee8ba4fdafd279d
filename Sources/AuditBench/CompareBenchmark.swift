import ArgumentParser
import AuditEngine
import Foundation

/// This build against another one (say main's, before a change), side by side: the same
/// workloads, each build on a database it ingested itself (schemas may differ), runs
/// alternating which build goes first, medians and ratios.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "This build vs another (--before): order_totals and the example projections on the real logs, alternating.")

    @Option(help: "The other build's folder, holding its audit-bench and audit (e.g. .build-main/release).") var before: String
    @Option(help: "This build's folder (default: the one this binary is in).") var after: String?
    @Option(help: "The repository (its projections/ and docs/data/).") var repo = "."
    @Option(help: "Only the phases whose names begin with this (repeatable; default: all).") var only: [String] = []
    @OptionGroup var workload: WorkloadOptions

    /// A handler that iterates a 20-key table with pairs and sorts a 100-element list on
    /// every event (Create Fine, a quarter of the road-fines events): what the fixed
    /// order of pairs and the deterministic sort cost.
    static let pairsAndSort = """
        return {
          version = 1,
          init = function() local t = {} for i = 1, 20 do t["field" .. i] = i end return { t = t, n = 0 } end,
          on = { ["Create Fine"] = function(s, e)
            local sum = 0
            for k, v in pairs(s.t) do sum = sum + v end
            local a = {}
            for i = 1, 100 do a[i] = (i * 7919 + e.data.article) % 101 end
            table.sort(a)
            s.n = s.n + sum + a[50]
          end },
        }
        """

    /// One measured phase: a name and how one build runs it.
    struct Phase {
        var name: String
        var run: (_ build: String) throws -> Measurement
    }

    func run() throws {
        let dir = try workload.directory()
        let builds = [("before", before), ("after", after ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path)]
        let phases = try orderPhases(dir: dir, builds: builds) + examplePhases(dir: dir, builds: builds)
        // Wall time and the child's CPU time (user + system): on a machine shared with
        // other work, the CPU time is the steadier of the two.
        var measured: [String: [String: [(wall: Double, cpu: Double)]]] = [:]
        for run in 1...workload.runs {
            for phase in phases {
                // The build that goes first alternates from run to run.
                for (label, folder) in run % 2 == 1 ? builds : builds.reversed() {
                    let before = Self.childrenCPUSeconds()
                    let m = try phase.run(folder)
                    let cpu = Self.childrenCPUSeconds() - before
                    measured[phase.name, default: [:]][label, default: []].append((m.seconds, cpu))
                    print("run \(run)  \(label.padding(toLength: 7, withPad: " ", startingAt: 0)) \(phase.name.padding(toLength: 40, withPad: " ", startingAt: 0))"
                        + String(format: " %9.0f events/s  %6.2f s  cpu %6.2f s", m.eventsPerSecond, m.seconds, cpu))
                    fflush(nil)  // each run's line as it ends, also into a file
                }
            }
        }
        print("")
        print("medians of \(workload.runs) runs, wall and CPU seconds; ratios after/before of the medians, in brackets the median of each run's own ratio and their range:")
        for phase in phases {
            let b = measured[phase.name]!["before"]!, a = measured[phase.name]!["after"]!
            for (what, part) in [("wall", { (x: (wall: Double, cpu: Double)) in x.wall }), ("cpu ", { $0.cpu })] {
                let own = zip(a, b).map { part($0) / part($1) }
                let (before, after) = (Measure.median(b.map(part)), Measure.median(a.map(part)))
                print(String(format: "  %@ %@ before %6.2f s  after %6.2f s  ratio %.3f  [%.3f, %.3f–%.3f]",
                             phase.name.padding(toLength: 40, withPad: " ", startingAt: 0), what,
                             before, after, after / before, Measure.median(own), own.min()!, own.max()!))
            }
        }
    }

    /// CPU seconds (user and system) of this process's children that have ended.
    static func childrenCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// order_totals on the reference workload, through each build's own `_replay` child.
    func orderPhases(dir: String, builds: [(String, String)]) throws -> [Phase] {
        let phases = [
            ("order_totals sequential --no-snapshots", ["1", "order_totals", "--no-snapshots"]),
            ("order_totals sequential", ["1"]),
            ("order_totals --parallel 2", ["2"]),
        ].filter { wanted($0.0) }
        guard !phases.isEmpty else { return [] }
        let file = try workload.workloadFile(in: dir)
        var dbs: [String: String] = [:]
        for (label, folder) in builds {
            dbs[folder] = try ingest(file, into: "\(dir)/orders-\(label)-\(workload.events)-\(workload.seed).db", with: folder)
        }
        return phases.map { name, arguments in
            Phase(name: name) { [dbs] folder in
                try Measure.child(["_replay", dbs[folder]!, dir] + arguments, executable: folder + "/audit-bench")
            }
        }
    }

    /// The example projections on copies of the real logs, through each build's
    /// `audit replay --rebuild --no-snapshots` (the build before may not have the
    /// `examples` benchmark): the process's wall time.
    func examplePhases(dir: String, builds: [(String, String)]) throws -> [Phase] {
        let folder = "\(dir)/cost-projections"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.pairsAndSort.write(toFile: "\(folder)/pairs_and_sort.lua", atomically: true, encoding: .utf8)
        let cases = ExamplesBenchmark.cases.map { ($0.projection, $0.log, $0.copies, "\(repo)/projections") }
            + [("pairs_and_sort", "road-fines.jsonl", 2_000, folder)]
        return try cases.filter { wanted(Self.exampleName($0.0)) }.map { projection, log, copies, projections in
            let base = "\(log.split(separator: ".")[0])-\(copies)"  // one database per log, whatever reads it
            let file = "\(dir)/\(base).jsonl"
            if !FileManager.default.fileExists(atPath: file) {
                try ExamplesBenchmark.write(source: "\(repo)/docs/data/\(log)", copies: copies, to: file)
            }
            var dbs: [String: String] = [:]
            for (label, folder) in builds {
                dbs[folder] = try ingest(file, into: "\(dir)/\(base)-\(label).db", with: folder)
            }
            let events = try EventStore(path: dbs[builds[1].1]!).head().seq
            return Phase(name: Self.exampleName(projection)) { [dbs] folder in
                let arguments = ["replay", projection, "--db", dbs[folder]!, "--projections", projections,
                                 "--rebuild", "--no-snapshots", "--parallel", "1"]
                var output = ""
                let seconds = try Measure.time { output = try Self.execute(folder + "/audit", arguments) }
                guard output.contains(#""status":"rebuilt""#) else { throw BenchError("\(folder)/audit \(arguments): \(output)") }
                return Measurement(name: projection, events: Int(events), seconds: seconds, peakRSSMB: 0)
            }
        }
    }

    static func exampleName(_ projection: String) -> String { "\(projection) sequential (audit replay)" }

    func wanted(_ phase: String) -> Bool { only.isEmpty || only.contains { phase.hasPrefix($0) } }

    /// The database at `db`, ingested from `file` by the build in `folder` when it does not exist yet.
    func ingest(_ file: String, into db: String, with folder: String) throws -> String {
        if !FileManager.default.fileExists(atPath: db) {
            let m = try Measure.child(["_engine", file, db], executable: folder + "/audit-bench")
            print(String(format: "ingested %@ in %.1f s: %@", file, m.seconds, db))
        }
        return db
    }

    /// Runs `executable` with `arguments` and returns what it printed; throws unless it exits 0.
    static func execute(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("\(executable) \(arguments) exited \(process.terminationStatus)") }
        return String(decoding: output, as: UTF8.self)
    }
}
