import Foundation

/// A folder of run directories (`NAME-000001`, `NAME-000002`, …) checked as the series
/// it holds: directory names against manifests, the runs the log recorded against the
/// runs present, and whether each series starts at run 1.
package enum ExportSeries {
    /// The export name and run a directory's name claims, when it is named as `--into`
    /// names runs: `NAME-` and the run number in at least 6 digits.
    package static func claim(_ directory: String) -> (name: String, run: Int64)? {
        let base = URL(fileURLWithPath: directory).lastPathComponent
        guard let dash = base.lastIndex(of: "-") else { return nil }
        let digits = base[base.index(after: dash)...]
        guard digits.count >= 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let run = Int64(digits), dash > base.startIndex else { return nil }
        return (String(base[..<dash]), run)
    }

    /// The directory name a run gets in a folder of runs (`trail-000042`).
    static func directoryName(name: String, run: Int64) -> String { name + "-" + String(format: "%06lld", run) }

    /// Checks the runs found in one folder: problems (exit 4) are returned, notes are
    /// added to the runs they concern.
    ///
    /// - With `store`: every run the log recorded as completed (`ExportCompleted`, in a
    ///   directory named as a run of the series) must be in the folder, unless the log
    ///   records its removal (`ExportRunRemoved`, appended by retention); and each run
    ///   present must have the manifest hash the log recorded for it.
    /// - Without: a series whose first run here is not run 1 says so in a note, naming
    ///   the earlier runs that are here but did not verify (`unverified`) apart from
    ///   those that are not here.
    package static func check(
        _ runs: inout [ExportVerification], folder: String, store: EventStore?, unverified: [UnverifiedRun] = []
    ) throws -> [String] {
        var problems: [String] = []
        let names = Set(runs.map(\.manifest.name))
        let recorded = try store.map { try $0.recordedExportRuns(names: names) } ?? [:]
        for name in names.sorted() {
            let indices = runs.indices.filter { runs[$0].manifest.name == name }.sorted { runs[$0].manifest.run < runs[$1].manifest.run }
            let present = Set(indices.map { runs[$0].manifest.run })
            let first = indices[0]
            let failed = unverified.filter { $0.name == name }.sorted { $0.run < $1.run }
            guard store != nil else {
                let lowest = runs[first].manifest.run
                if lowest > 1 {
                    runs[first].notes.append(firstRunNote(name: name, lowest: lowest, folder: folder, failed: failed))
                }
                continue
            }
            let log = recorded[name] ?? RecordedRuns()
            for index in indices {
                let run = runs[index]
                if let completed = log.completed[run.manifest.run], completed.manifestSHA256 != run.manifestSHA256 {
                    problems.append(
                        "export \(name), run \(run.manifest.run) (\(run.directory)): its manifest.json hashes to \(run.manifestSHA256), but the log recorded \(completed.manifestSHA256) for it (ExportCompleted at seq \(completed.seq)): it was replaced")
                }
            }
            var removed: [Int64] = []
            let failedHere = Set(failed.map(\.run))  // there: their problems are reported with them
            for (number, completed) in log.completed.sorted(by: { $0.key < $1.key }) where !present.contains(number) && !failedHere.contains(number) {
                guard URL(fileURLWithPath: completed.directory).lastPathComponent == directoryName(name: name, run: number) else { continue }
                if log.removed.contains(number) {
                    removed.append(number)
                    continue
                }
                problems.append(
                    "export \(name), run \(number): the log recorded it (ExportCompleted at seq \(completed.seq), \(completed.directory)) and no removal of it, but it is not in \(folder): it was removed or renamed")
            }
            if !removed.isEmpty {
                runs[first].notes.append(
                    "export \(name): \(removed.count) run(s) recorded as removed by retention are not here (runs \(removed.map(String.init).joined(separator: ", ")))")
            }
        }
        return problems
    }

    /// Offline, of a series whose first run that verifies is `lowest` > 1: which earlier
    /// runs are not here, and which are here but did not verify.
    static func firstRunNote(name: String, lowest: Int64, folder: String, failed: [UnverifiedRun]) -> String {
        let here = failed.filter { $0.run >= 1 && $0.run < lowest }
        let missing = UnverifiedRun.missing(from: 1, to: lowest - 1, present: here.map(\.run))
        var parts = missing.map { UnverifiedRun.describe($0) + " not here (removed by retention, or missing)" }
        parts += here.map { "run \($0.run) (\($0.directory)) is here but \($0.state)" }
        let opening = here.isEmpty ? "export \(name) starts at run \(lowest) in \(folder)" : "the first run of export \(name) in \(folder) that verifies is run \(lowest)"
        let one = missing.count == 1 && missing[0].lowerBound == missing[0].upperBound
        return opening + ": " + parts.joined(separator: "; ")
            + (missing.isEmpty ? "" : "; give --db to check that \(one ? "it" : "each") was recorded as removed")
    }

    /// What the log says of an export's runs.
    struct RecordedRuns {
        struct Completed {
            var seq: Int64
            var directory: String
            var manifestSHA256: String
        }
        var completed: [Int64: Completed] = [:]
        var removed: Set<Int64> = []
    }
}

extension EventStore {
    /// The completed and removed runs the log records for each of `names` (from their
    /// `audit-export-NAME` streams, which the hash chain covers).
    func recordedExportRuns(names: Set<String>) throws -> [String: ExportSeries.RecordedRuns] {
        var result: [String: ExportSeries.RecordedRuns] = [:]
        for name in names {
            var runs = ExportSeries.RecordedRuns()
            try forEachEvent(EventFilter(stream: ExportRuns.stream(name))) { event in
                guard let data = try? JSONParser.parse(event.data), case .int(let run)? = data["run"] else { return }
                switch event.type {
                case "ExportCompleted":
                    runs.completed[run] = .init(
                        seq: event.seq, directory: data["directory"]?.stringValue ?? "", manifestSHA256: data["manifest_sha256"]?.stringValue ?? "")
                case ExportRuns.removedType:
                    runs.removed.insert(run)
                default: break
                }
            }
            result[name] = runs
        }
        return result
    }
}
