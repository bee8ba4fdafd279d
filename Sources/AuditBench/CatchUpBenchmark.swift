import ArgumentParser
import AuditEngine
import Foundation

/// What checking that nothing needs catching up costs a read (DECISIONS 14): `query` on
/// an up-to-date projection, with the catch-up check (read positions, hash the folder's
/// code) against `--no-catch-up`, each run opening the store as a command does.
struct CatchUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catch-up", abstract: "query on an up-to-date projection vs --no-catch-up (target: under 5 ms more per command).")

    @Option(help: "The repository (its projections/, queries/ and docs/data/).") var repo = "."
    @Option(help: "Measured runs of each (medians are reported; at least 30).") var runs = 40
    @Option(help: "Scratch directory (default: a new temporary one).") var workdir: String?

    func validate() throws {
        if runs < 30 { throw ValidationError("--runs must be at least 30") }
    }

    func run() throws {
        let dir = workdir ?? NSTemporaryDirectory() + "audit-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = "\(dir)/catch-up-\(getpid()).db"
        let store = try EventStore(path: db, create: true)
        try store.ingest(path: "\(repo)/docs/data/road-fines.jsonl")
        let projection = try Projection.load(file: "\(repo)/projections/fine_balances.lua", libDirectory: "\(repo)/projections/lib")
        _ = try store.replay([projection])
        let sql = try SavedQuery.load("outstanding_fines", from: "\(repo)/queries")

        /// nil: the query with no check at all, as before reads were current.
        func query(catchUp: Bool?) throws -> Double {
            try Measure.time {
                let store = try EventStore(path: db)
                var options = CatchUpOptions()
                options.catchUp = catchUp ?? false
                options.folder = "\(repo)/projections"
                var rows = 0
                if catchUp == nil {
                    try store.query(sql: sql, header: { _ in }, row: { _ in rows += 1 })
                } else {
                    try store.query(sql: sql, current: options, header: { _ in }, row: { _ in rows += 1 })
                }
                guard rows > 0 else { throw BenchError("outstanding_fines returned no rows") }
            }
        }
        // The CLI too, when the audit binary was built beside this one.
        let cli = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("audit").path
        let hasCLI = FileManager.default.isExecutableFile(atPath: cli)
        func command(_ extra: [String]) throws -> Double {
            try Measure.time {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: cli)
                process.arguments = ["--db", db, "query", "outstanding_fines", "--projections", "\(repo)/projections", "--queries", "\(repo)/queries"] + extra
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw BenchError("audit query exited \(process.terminationStatus)") }
            }
        }
        _ = try query(catchUp: true)  // warm the page cache
        var current: [Double] = [], asIs: [Double] = [], plain: [Double] = [], cliCurrent: [Double] = [], cliAsIs: [Double] = []
        for run in 0..<runs {
            // Alternating which goes first, so that drift on a busy machine falls on both.
            if run % 2 == 0 {
                current.append(try query(catchUp: true))
                asIs.append(try query(catchUp: false))
                plain.append(try query(catchUp: nil))
                if hasCLI {
                    cliCurrent.append(try command([]))
                    cliAsIs.append(try command(["--no-catch-up"]))
                }
            } else {
                plain.append(try query(catchUp: nil))
                asIs.append(try query(catchUp: false))
                current.append(try query(catchUp: true))
                if hasCLI {
                    cliAsIs.append(try command(["--no-catch-up"]))
                    cliCurrent.append(try command([]))
                }
            }
        }
        let position = try store.projectionRecords().live["fine_balances"]?.position ?? 0
        guard position == (try store.head().seq) else { throw BenchError("fine_balances is not at the head: the benchmark needs an up-to-date projection") }
        func ms(_ values: [Double]) -> Double { Measure.median(values) * 1000 }
        let paired = Measure.median(zip(current, asIs).map { ($0 - $1) * 1000 })
        print("query outstanding_fines on an up-to-date fine_balances (\(position) events), medians of \(runs) runs:")
        print(String(format: "  in process (open the store, query):  catch-up %.2f ms   --no-catch-up %.2f ms   difference %.2f ms [paired %.2f ms]", ms(current), ms(asIs), ms(current) - ms(asIs), paired))
        let check = Measure.median(zip(current, plain).map { ($0 - $1) * 1000 })
        print(String(format: "  in process, no check at all (the query as before): %.2f ms: the check costs %.2f ms [paired %.2f ms]", ms(plain), ms(current) - ms(plain), check))
        if hasCLI {
            let cliPaired = Measure.median(zip(cliCurrent, cliAsIs).map { ($0 - $1) * 1000 })
            print(String(format: "  the audit command:                   catch-up %.2f ms   --no-catch-up %.2f ms   difference %.2f ms [paired %.2f ms]", ms(cliCurrent), ms(cliAsIs), ms(cliCurrent) - ms(cliAsIs), cliPaired))
        } else {
            print("  (the audit command was not timed: build it beside audit-bench, swift build -c release --product audit)")
        }
        let worst = max(ms(current) - ms(asIs), ms(current) - ms(plain), hasCLI ? ms(cliCurrent) - ms(cliAsIs) : 0)
        print(String(format: "  check: difference < 5 ms: %@ (%.2f ms)", worst < 5 ? "yes" : "NO", worst))
        for suffix in ["", "-wal", "-shm", "-replay.lock"] { try? FileManager.default.removeItem(atPath: db + suffix) }
    }
}
