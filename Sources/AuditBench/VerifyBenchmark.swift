import ArgumentParser
import Foundation

/// `audit verify` of the reference workload, as a user runs it (process start, opening,
/// the whole check), side by side with another build's `audit verify` on a database
/// that build made itself (`--baseline-audit`, e.g. main's release binary).
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "audit verify of the reference workload, beside another build's.")

    @OptionGroup var workload: WorkloadOptions
    @Option(help: ArgumentHelp("Another build's audit binary to compare with; it ingests the workload into a database of its own.", valueName: "path"))
    var baselineAudit: String?

    func run() throws {
        let dir = try workload.directory()
        let file = try workload.workloadFile(in: dir)
        let audit = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("audit").path
        let db = try workload.database("verify", in: dir, from: file)
        var baselineDB: String?
        if let baselineAudit {
            let path = "\(dir)/verify-baseline-\(workload.events)-\(workload.seed).db"
            if !FileManager.default.fileExists(atPath: path) {
                _ = try Measure.command(baselineAudit, ["--db", path, "init", "--projections", dir + "/none", "--queries", dir + "/none"])
                let seconds = try Measure.command(baselineAudit, ["--db", path, "ingest", file])
                print(String(format: "the baseline ingested the workload in %.1f s: %@", seconds, path))
            }
            baselineDB = path
        }
        var this: [Double] = [], baseline: [Double] = [], thisOnBaseline: [Double] = []
        for run in 1...workload.runs {
            let t = try Measure.command(audit, ["--db", db, "verify"])
            this.append(t)
            print(String(format: "run %d  this build's verify      %9.0f events/s  %6.2f s", run, Double(workload.events) / t, t))
            if let baselineAudit, let baselineDB {
                let b = try Measure.command(baselineAudit, ["--db", baselineDB, "verify"])
                baseline.append(b)
                print(String(format: "run %d  baseline verify          %9.0f events/s  %6.2f s", run, Double(workload.events) / b, b))
                let o = try Measure.command(audit, ["--db", baselineDB, "verify"])
                thisOnBaseline.append(o)
                print(String(format: "run %d  this build, older schema %9.0f events/s  %6.2f s", run, Double(workload.events) / o, o))
            }
        }
        let rate = { (times: [Double]) in Double(workload.events) / Measure.median(times) }
        print("")
        print("verify, \(workload.events) events, medians of \(workload.runs) runs (the whole command, as a user runs it):")
        print(String(format: "  this build                              : %9.0f events/s  %6.2f s", rate(this), Measure.median(this)))
        if !baseline.isEmpty {
            print(String(format: "  baseline, on its own database           : %9.0f events/s  %6.2f s", rate(baseline), Measure.median(baseline)))
            print(String(format: "  this build, on the baseline's database  : %9.0f events/s  %6.2f s", rate(thisOnBaseline), Measure.median(thisOnBaseline)))
            let paired = Measure.median(zip(this, baseline).map { $0 / $1 })
            print(String(format: "  time ratio this / baseline: %.2f  [median of each run's own: %.2f]   (target: <= 1.5)", Measure.median(this) / Measure.median(baseline), paired))
        }
    }
}
