import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole log: the hash chain, every stored value's type, the schema and the side tables.",
            discussion: """
                Prints {"ok":true,"events":N,"head":"<hex>"}, or names the problems found (every problem
                of the schema and the file, the first 20 bad seqs, and how many there are) and exits 4.
                The database is opened read-only: nothing is written, not even beside it.
                Events holding values an older build accepted and this one refuses (a NUL in a stream)
                are listed on stderr and in "accepted_by_older_build"; they are not damage.
                """)

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let report = try EventStore.verify(path: global.databasePath, progress: stderrIsTerminal ? Self.showProgress : nil)
            if stderrIsTerminal { ProgressLine.clear() }
            for (seq, note) in zip(report.olderBuildSeqs, report.olderBuildNotes) {
                warn("audit: note: seq \(seq): \(note)")
            }
            if report.olderBuildCount > report.olderBuildSeqs.count {
                warn("audit: note: … and \(report.olderBuildCount - report.olderBuildSeqs.count) more events accepted by an older build")
            }
            var out = Output()
            out.line(report.json)
            out.flush()
        }

        @Sendable static func showProgress(_ p: UpgradeProgress) {
            warnInPlace("verify: \(p.done) of \(p.total) events")
        }
    }
}
