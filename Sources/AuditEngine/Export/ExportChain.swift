/// Walks the chain that the runs of an export form: each manifest names the previous
/// run's manifest hash and the log's hash at the previous run's last seq (which must be
/// that run's chain head: else the log was rewritten between them), and each
/// incremental run starts right after the previous one.
public enum ExportChain {
    /// The links that do not hold between verified runs (grouped by export name and
    /// ordered by run); empty when every link holds.
    public static func problems(_ runs: [ExportVerification]) -> [String] {
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
                    problems.append("\(at): runs \(a.run + 1)…\(b.run - 1) are missing between it and run \(a.run)")
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
