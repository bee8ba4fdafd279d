import ArgumentParser
import AuditEngine
import Foundation

/// Reports over time on the reference workload (issue 25): `tot` as of every day
/// boundary, each a separate question (timed one by one); the same days as one series
/// (`--as-of-each day`); the same days as separate questions in one process; and one
/// `replay --rebuild --no-snapshots` of the whole log to compare them with. With
/// `--baseline AUDIT`, an older `audit` executable's separate questions are timed too,
/// over a database it builds itself.
struct SeriesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "series",
        abstract: "Point-in-time queries at each day boundary, a series of them in one pass, and the separate queries, against one rebuild.")

    @OptionGroup var workload: WorkloadOptions
    @Option(help: ArgumentHelp("An older audit executable whose separate --as-of queries are timed as well.", valueName: "path"))
    var baseline: String?

    static let sql = "SELECT count(*), sum(json_extract(state,'$.total')) FROM order_totals"

    func run() throws {
        let (dir, file, db, _) = try workload.replayedDatabase("series")
        // The rebuild without snapshots runs on a copy, so that the snapshots stay.
        let copy = "\(dir)/series-rebuild-\(workload.events)-\(workload.seed).db"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: db, toPath: copy)
        let days = try Self.days(db, events: workload.events)
        let (from, to) = (days.first!.description, days.last!.description)
        let old = try baseline.map { try OldAudit(executable: $0, dir: dir, file: file) }

        var rebuilds: [Measurement] = [], series: [Measurement] = [], separate: [Measurement] = []
        var points = Array(repeating: [Measurement](), count: days.count), oldPoints = points
        for run in 1...workload.runs {
            let r = try Measure.child(["_replay", copy, dir, "1", "order_totals", "--no-snapshots"])
            rebuilds.append(r)
            Measure.printRun(run, r)
            for (i, day) in days.enumerated() {
                points[i].append(try Measure.child(["_series", db, dir, day.description, day.description, "point"]))
                if let old { oldPoints[i].append(try old.query(asOf: day)) }
            }
            print(String(format: "run %d  %d single points: %.2f s in all", run, days.count, points.map { $0.last!.seconds }.reduce(0, +)))
            let s = try Measure.child(["_series", db, dir, from, to, "series"])
            series.append(s)
            Measure.printRun(run, s)
            let p = try Measure.child(["_series", db, dir, from, to, "separate"])
            separate.append(p)
            Measure.printRun(run, p)
        }

        print("")
        print("\(workload.events) events, \(days.count) day boundaries \(from) … \(to); medians of \(workload.runs) runs")
        print("query: \(Self.sql)")
        // Wall clock, then CPU time: on a machine shared with other work the second is steadier.
        for (clock, value) in [("wall clock", { (m: Measurement) in m.seconds }), ("CPU time", { (m: Measurement) in m.cpuSeconds ?? .nan })] {
            func median(_ runs: [Measurement]) -> Double { Measure.median(runs.map(value)) }
            let rebuild = median(rebuilds)
            print("")
            print("\(clock):")
            print(String(format: "  replay --rebuild --no-snapshots of the whole log: %6.2f s", rebuild))
            print("  single --as-of questions, each timed (median per day), and the rebuild's multiple of it:")
            var ratios: [Double] = []
            for (i, day) in days.enumerated() {
                let seconds = median(points[i])
                ratios.append(rebuild / seconds)
                let then = oldPoints[i].isEmpty ? "" : String(format: "   (today's engine: %6.3f s, a whole process)", median(oldPoints[i]))
                print(String(format: "    %@  %6.3f s  %5.1fx", day.description, seconds, rebuild / seconds) + then)
            }
            print(String(format: "  slowest single point: %.1fx faster than the rebuild; median %.1fx   (target: every one >= 5x)",
                         ratios.min()!, Measure.median(ratios)))
            let one = median(series), apart = median(separate)
            print(String(format: "  series --as-of-each day (%d points, one pass): %6.2f s = %.2f of the rebuild   (target: <= 2)", days.count, one, one / rebuild))
            print(String(format: "  %d separate --as-of questions, one process    : %6.2f s; series / separate = %.2f   (target: <= 0.33)", days.count, apart, one / apart))
            if old != nil {
                let sum = oldPoints.map(median).reduce(0, +)
                print(String(format: "  %d separate questions with today's engine (the per-day medians above added up): %6.2f s", days.count, sum))
            }
        }
        print("")
        let expected = separate[0].summary
        let pointsJoined = (0..<workload.runs).map { run in points.map { $0[run].summary }.joined(separator: "\n") }
        var all = series.map(\.summary) + separate.map(\.summary) + pointsJoined
        if old != nil { all += (0..<workload.runs).map { run in oldPoints.map { $0[run].summary }.joined(separator: "\n") } }
        print("  results identical (series, separate, single points\(old != nil ? ", today's engine" : "")): \(all.allSatisfy { $0 == expected } ? "yes" : "NO")")
        print("  first and last rows: \(expected.split(separator: "\n").first!) … \(expected.split(separator: "\n").last!)")
    }

    /// The day boundaries from the first event's day to the last one's, within the
    /// workload's `events` (the replay appends its `CodeBuilt` records after them,
    /// stamped now: they are not the workload's days).
    static func days(_ db: String, events: Int) throws -> [Timestamp] {
        let store = try EventStore(path: db)
        var first: Timestamp?, last: Timestamp?
        try store.forEachEvent(EventFilter(limit: 1)) { first = $0.occurredAt }
        try store.forEachEvent(EventFilter(fromSeq: Int64(events), toSeq: Int64(events))) { last = $0.occurredAt }
        guard let first, let last else { throw BenchError("the workload is empty") }
        let days = SeriesPoints(unit: .day, from: first, to: last).boundaries
        guard !days.isEmpty else {
            throw BenchError("the workload's events (\(first) to \(last)) cross no day boundary: give more --events")
        }
        return days
    }
}

/// Child: `tot` at every day boundary from `from` to `to`, as one series, as separate
/// questions one after another, or (`point`, with from = to) one question. Its summary
/// is one line per point, `as_of|count|sum`, whichever way it was computed.
struct ChildSeries: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_series", shouldDisplay: false)
    @Argument var db: String
    @Argument var dir: String
    @Argument var from: String
    @Argument var to: String
    @Argument var mode: String

    func run() throws {
        let store = try EventStore(path: db)
        let projection = try ReplayBenchmark.loadProjection("order_totals", dir: dir)
        var options = TemporalOptions()
        options.parallel = ProcessInfo.processInfo.activeProcessorCount
        let points = SeriesPoints(unit: .day, from: try Timestamp(rfc3339: from), to: try Timestamp(rfc3339: to))
        var lines: [String] = []
        func line(_ values: [SQLValue]) -> String { values.map(\.text).joined(separator: "|") }
        let (seconds, cpu) = try Measure.timed {
            if mode == "series" {
                try store.query(
                    sql: SeriesCommand.sql, series: points, projections: [projection], options: options, header: { _ in },
                    row: { lines.append(line($0)) })
            } else {
                for day in points.boundaries {
                    try store.query(
                        sql: SeriesCommand.sql, at: TemporalSelection(asOf: day), projections: [projection], options: options,
                        header: { _ in }, row: { lines.append(day.description + "|" + line($0)) })
                }
            }
        }
        let name = ["series": "series, one pass", "separate": "separate questions"][mode] ?? "as-of \(from.prefix(10))"
        Measure.report(Measurement(
            name: name, events: points.boundaries.count, seconds: seconds, peakRSSMB: Measure.peakRSSMB(),
            summary: lines.joined(separator: "\n"), cpuSeconds: cpu))
    }
}

/// An older `audit` executable (today's engine) with a database it ingested and
/// replayed itself, with snapshots at the default policy.
struct OldAudit {
    let executable: String
    let dir: String
    let db: String

    init(executable: String, dir: String, file: String) throws {
        self.executable = executable
        self.dir = dir + "/baseline"
        db = self.dir + "/old.db"
        try FileManager.default.createDirectory(atPath: self.dir + "/projections", withIntermediateDirectories: true)
        try ReplayBenchmark.sources["order_totals"]!.write(toFile: self.dir + "/projections/order_totals.lua", atomically: true, encoding: .utf8)
        if !FileManager.default.fileExists(atPath: db) {
            for arguments in [["init"], ["ingest", file], ["replay", "order_totals"]] { _ = try run(arguments) }
        }
    }

    /// Runs `audit --db DB ARGUMENTS` in its folder; its stdout, seconds and CPU seconds.
    private func run(_ arguments: [String]) throws -> (String, Double, Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--db", db] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        let pipe = Pipe()
        process.standardOutput = pipe
        var output = Data()
        let cpu = Measure.cpuSeconds(RUSAGE_CHILDREN)
        let seconds = try Measure.time {
            try process.run()
            output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
        }
        guard process.terminationStatus == 0 else { throw BenchError("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)") }
        return (String(decoding: output, as: UTF8.self), seconds, Measure.cpuSeconds(RUSAGE_CHILDREN) - cpu)
    }

    /// `tot` as of `day`, timed as a whole process (so including its start, ~0.05 s).
    func query(asOf day: Timestamp) throws -> Measurement {
        let (output, seconds, cpu) = try run(["query", "--sql", SeriesCommand.sql, "--as-of", day.description, "--format", "csv"])
        let row = output.split(separator: "\n").dropFirst().first.map { $0.replacingOccurrences(of: ",", with: "|") } ?? ""
        return Measurement(name: "today's engine", events: 1, seconds: seconds, peakRSSMB: 0, summary: day.description + "|" + row, cpuSeconds: cpu)
    }
}
