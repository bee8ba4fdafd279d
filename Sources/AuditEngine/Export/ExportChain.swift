/// Walks the chain that the runs of an export form: each manifest names the previous
/// run's manifest hash, and each incremental run starts right after the previous one.
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
                if b.selection.incremental, a.selection.incremental, b.selection.fromSeq != a.selection.toSeq + 1 {
                    problems.append(
                        "\(at): it starts at seq \(b.selection.fromSeq) but run \(a.run) ended at seq \(a.selection.toSeq): \(b.selection.fromSeq > a.selection.toSeq + 1 ? "a gap" : "an overlap")")
                }
            }
        }
        return problems
    }
}
