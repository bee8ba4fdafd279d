import ArgumentParser
import AuditEngine
import Crypto
import Foundation

/// `audit state order_totals --as-of T`, T 90% into the log: from the newest usable
/// snapshot (default policy) vs folded from seq 1, in one run.
struct AsOfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asof", abstract: "A point-in-time state with snapshots vs folded from seq 1 (--no-snapshots).")

    @OptionGroup var workload: WorkloadOptions

    func run() throws {
        let (dir, _, db, replay) = try workload.replayedDatabase("asof")
        let store = try EventStore(path: db)
        let snapshots = try store.snapshots().filter { $0.projection == "order_totals" }
        var asOf = ""
        try store.forEachEvent(EventFilter(fromSeq: Int64(Double(workload.events) * 0.9), limit: 1)) { asOf = $0.occurredAt.description }

        var fast: [Measurement] = [], slow: [Measurement] = []
        for run in 1...workload.runs {
            let s = try Measure.child(["_asof", db, dir, asOf, "snapshots"])
            fast.append(s)
            Measure.printRun(run, s)
            let n = try Measure.child(["_asof", db, dir, asOf, "scratch"])
            slow.append(n)
            Measure.printRun(run, n)
        }
        let fastSeconds = Measure.median(fast.map(\.seconds)), slowSeconds = Measure.median(slow.map(\.seconds))
        print("")
        print("audit state order_totals --as-of \(asOf) (90% into \(workload.events) events), medians of \(workload.runs) runs:")
        print(String(format: "  from the newest usable snapshot: %6.2f s   peak %.0f MB", fastSeconds, fast.map(\.peakRSSMB).max()!))
        print(String(format: "  folded from seq 1              : %6.2f s   peak %.0f MB", slowSeconds, slow.map(\.peakRSSMB).max()!))
        print(String(format: "  speed-up: %.1fx   (target: >= 10)", slowSeconds / fastSeconds))
        print("  output identical: \((fast + slow).allSatisfy { $0.summary == fast[0].summary } ? "yes" : "NO") (\(fast[0].summary.prefix(16))…)")
        print("")
        let taking = snapshots.map { Double($0.milliseconds) }
        print("snapshots at the default policy (every \(SnapshotPolicy.default.every) seqs, keep \(SnapshotPolicy.default.keep)), taken by the replay above:")
        print("  kept: \(snapshots.count), at seqs \(snapshots.map(\.seq).map(String.init).joined(separator: ", "))")
        print(String(format: "  stored: %.1f MB, %d states (the first holds every key, the others only keys changed since)",
                     Double(snapshots.map(\.deltaBytes).reduce(0, +)) / 1e6, snapshots.map(\.deltaRows).reduce(0, +)))
        if !taking.isEmpty {
            print(String(format: "  time to take one: median %.0f ms, max %.0f ms (writing its delta; the replay serialised its states anyway, for the table)",
                         Measure.median(taking), taking.max()!))
        }
        print(String(format: "  replay from seq 1 with them: %.2f s", replay.seconds))
    }
}

struct ChildAsOf: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_asof", shouldDisplay: false)
    @Argument var db: String
    @Argument var dir: String
    @Argument var asOf: String
    @Argument var mode: String

    func run() throws {
        let store = try EventStore(path: db)
        let projection = try ReplayBenchmark.loadProjection("order_totals", dir: dir)
        var options = TemporalOptions()
        options.useSnapshots = mode == "snapshots"
        options.parallel = ProcessInfo.processInfo.activeProcessorCount
        var hasher = SHA256()
        var keys = 0
        var lines: [UInt8] = []
        lines.reserveCapacity(1 << 17)
        let seconds = try Measure.time {
            // As `audit state --format jsonl` prints it, hashed instead of written.
            let time = TemporalSelection(asOf: try Timestamp(rfc3339: asOf))
            try store.forEachStateBytes(projection, at: time, options: options) { key, state in
                StateLine.append(key: key, state: state, to: &lines)
                lines.append(0x0A)
                if lines.count >= 1 << 16 {
                    hasher.update(data: lines)
                    lines.removeAll(keepingCapacity: true)
                }
                keys += 1
            }
            hasher.update(data: lines)
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        Measure.report(Measurement(
            name: mode == "snapshots" ? "as-of, snapshots" : "as-of, from seq 1", events: keys, seconds: seconds,
            peakRSSMB: Measure.peakRSSMB(), summary: digest))
    }
}
