import ArgumentParser
import AuditEngine
import Foundation

/// `verify --projections` of order_totals against `replay --rebuild --no-snapshots` of
/// it, on the same database, alternating (target: verify within 1.3x of the replay).
struct VerifyProjectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-projections",
        abstract: "verify --projections (rebuild aside and compare) vs replay --rebuild --no-snapshots of order_totals.")

    @OptionGroup var workload: WorkloadOptions
    @Option(help: "Workers for the projection (both phases).") var parallel = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let dir = try workload.directory()
        let file = try workload.workloadFile(in: dir)
        let db = try workload.database("replay", in: dir, from: file)
        var replays: [Measurement] = [], verifies: [Measurement] = []
        for run in 1...workload.runs {
            // The replay first: it leaves the live table the verification compares with.
            let r = try Measure.child(["_replay", db, dir, String(parallel), "order_totals", "--no-snapshots"])
            replays.append(r)
            Measure.printRun(run, r)
            let v = try Measure.child(["_verify-projections", db, dir, String(parallel)])
            verifies.append(v)
            Measure.printRun(run, v)
        }
        let replay = Measure.median(replays.map(\.seconds)), verify = Measure.median(verifies.map(\.seconds))
        let paired = Measure.median(zip(verifies, replays).map { $0.seconds / $1.seconds })
        print("")
        print("order_totals, \(workload.events) events, --parallel \(parallel), medians of \(workload.runs) runs:")
        print(String(format: "  replay --rebuild --no-snapshots : %6.2f s   peak %.0f MB", replay, replays.map(\.peakRSSMB).max()!))
        print(String(format: "  verify --projections            : %6.2f s   peak %.0f MB   (%@)", verify, verifies.map(\.peakRSSMB).max()!, verifies.last!.summary))
        print(String(format: "  verify / replay: %.2f  [median of each run's own ratio: %.2f]   (target: <= 1.3)", verify / replay, paired))
    }
}

struct ChildVerifyProjections: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_verify-projections", shouldDisplay: false)
    @Argument var db: String
    @Argument var dir: String
    @Argument var parallel: Int = 1

    func run() throws {
        let store = try EventStore(path: db)
        let projection = try ReplayBenchmark.loadProjection("order_totals", dir: dir)
        var options = ProjectionCheckOptions()
        options.parallel = parallel
        var checks: [ProjectionCheck] = []
        let seconds = try Measure.time { checks = try store.verifyProjections([projection], options: options) }
        guard let check = checks.first, check.status == .ok else { throw BenchError("verify --projections did not find the table equal: \(checks)") }
        Measure.report(Measurement(
            name: "verify --projections", events: Int(check.position ?? 0), seconds: seconds, peakRSSMB: Measure.peakRSSMB(),
            summary: "\(check.differences.keys) keys equal"))
    }
}
