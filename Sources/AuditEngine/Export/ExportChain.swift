/// Walks the chain that the runs of an export form: each manifest names the previous
/// run's manifest hash and the log's hash at the previous run's last seq (which must be
/// that run's chain head: else the log was rewritten between them), and each
/// incremental run starts right after the previous one.
public enum ExportChain {
    /// The links that do not hold between verified runs (grouped by export name and
    /// ordered by run); empty when every link holds. A run missing between two is named
    /// as missing, or — when `unverified` holds a directory named as that run — as there
    /// but not verified (no manifest.json, or a problem reported with it).
    public static func problems(_ runs: [ExportVerification], unverified: [UnverifiedRun] = []) -> [String] {
        var problems: [String] = []
        let byName = Dictionary(grouping: runs, by: { $0.manifest.name })
        for name in byName.keys.sorted() {
            let ordered = byName[name]!.sorted { $0.manifest.run < $1.manifest.run }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                let a = earlier.manifest, b = later.manifest
                let at = "export \(name), run \(b.run) (\(later.directory))"
                if b.run == a.run {
                    problems.append("\(at): two directories claim run \(b.run) (\(earlier.directory))")
                    continue
                }
                if b.run != a.run + 1 {
                    let here = unverified.filter { $0.name == name && $0.run > a.run && $0.run < b.run }.sorted { $0.run < $1.run }
                    for range in UnverifiedRun.missing(from: a.run + 1, to: b.run - 1, present: here.map(\.run)) {
                        problems.append("\(at): \(UnverifiedRun.describe(range)) missing between it and run \(a.run)")
                    }
                    for run in here {
                        problems.append("\(at): run \(run.run) (\(run.directory)) is between it and run \(a.run) but \(run.state): the chain through it cannot be checked")
                    }
                    continue
                }
                guard let previous = b.previous, previous.run == a.run else {
                    problems.append("\(at): its manifest does not name run \(a.run) as the previous run")
                    continue
                }
                if previous.manifestSHA256 != earlier.manifestSHA256 {
                    problems.append("\(at): it names the previous manifest \(previous.manifestSHA256), but run \(a.run)'s manifest.json hashes to \(earlier.manifestSHA256): run \(a.run) was replaced")
                }
                let consecutive = b.selection.incremental && a.selection.incremental
                if consecutive, b.selection.fromSeq != a.selection.toSeq + 1 {
                    problems.append(
                        "\(at): it starts at seq \(b.selection.fromSeq) but run \(a.run) ended at seq \(a.selection.toSeq): \(b.selection.fromSeq > a.selection.toSeq + 1 ? "a gap" : "an overlap")")
                }
                // The log's hash at the earlier run's last seq, as the later run found it
                // (for consecutive ranges, that is where the later one's chain begins).
                var found: (seq: Int64, head: String)?
                if let seq = previous.chainSeq, let head = previous.chainHead {
                    found = (seq, head)
                } else if consecutive, b.selection.fromSeq == a.selection.toSeq + 1 {
                    found = (a.chain.seq, b.chain.before)
                }
                if let found {
                    if found.seq != a.chain.seq {
                        problems.append("\(at): it names seq \(found.seq) as run \(a.run)'s last, but run \(a.run)'s chain ends at seq \(a.chain.seq)")
                    } else if found.head != a.chain.head {
                        problems.append(
                            "\(at): the log was rewritten between run \(a.run) and run \(b.run): run \(b.run) found the hash \(found.head) at seq \(found.seq), but run \(a.run)'s chain head there is \(a.chain.head)")
                    }
                }
            }
        }
        return problems
    }
}

/// A directory named as a run (`NAME-000002`) that did not verify: its problems are
/// reported with it, and the chain and the series say that it is there.
public struct UnverifiedRun: Sendable, Equatable {
    public var name: String
    public var run: Int64
    public var directory: String
    /// Whether it holds a manifest.json (that did not verify) or none.
    public var hasManifest: Bool

    public init(name: String, run: Int64, directory: String, hasManifest: Bool) {
        self.name = name
        self.run = run
        self.directory = directory
        self.hasManifest = hasManifest
    }

    /// What is wrong with it, after "but".
    var state: String { hasManifest ? "does not verify" : "has no manifest.json" }

    /// The ranges of `from…to` not in `present` (without walking the range: run numbers
    /// come from manifests).
    static func missing(from: Int64, to: Int64, present: [Int64]) -> [ClosedRange<Int64>] {
        guard from <= to else { return [] }
        var ranges: [ClosedRange<Int64>] = []
        var next = from
        for run in Set(present).sorted() where run >= next && run <= to {
            if run > next { ranges.append(next...(run - 1)) }
            if run == to { return ranges }
            next = run + 1
        }
        ranges.append(next...to)
        return ranges
    }

    /// "run 2 is", "runs 2…4 are".
    static func describe(_ range: ClosedRange<Int64>) -> String {
        range.lowerBound == range.upperBound ? "run \(range.lowerBound) is" : "runs \(range.lowerBound)…\(range.upperBound) are"
    }
}
