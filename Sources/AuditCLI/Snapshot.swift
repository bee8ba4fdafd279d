import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Snapshot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take projection snapshots now, or list the stored ones.",
            discussion: """
                Brings each projection up to date (as `audit replay`) and snapshots it at its position, \
                whatever its snapshot_every. Prints one JSON line per snapshot taken or listed, with \
                projection, seq, max_occurred_at, max_recorded_at, keys, delta_rows, delta_bytes and \
                milliseconds.

                Examples:
                  audit snapshot
                  audit snapshot fine_balances
                  audit snapshot --list
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Argument(help: "Projections to snapshot (default: all).", completion: WorkspaceCompletion.projections) var names: [String] = []
        @Flag(help: "List the stored snapshots instead of taking any.") var list = false

        func run() throws {
            // Listing only reads: a read-only open (another user's file, --read-only).
            let store = try openStore(global, access: list ? .readOnly : .readWrite)
            var out = Output()
            if list {
                let known = try KnownProjections(folder: workspace.projections, store: store)
                for name in names { try known.require(name) }
                for snapshot in try store.snapshots() where names.isEmpty || names.contains(snapshot.projection) {
                    try out.line(line(snapshot))
                }
                return try out.flush()
            }
            let loaded = try workspace.loadProjections(names)
            for case .failure(let error) in loaded { throw error }
            let projections = loaded.compactMap { try? $0.get() }
            var options = ReplayOptions()
            options.snapshotNow = true
            options.parallel = ProcessInfo.processInfo.activeProcessorCount
            if stderrIsTerminal { options.progress = ProgressLine.report }
            let outcomes = try store.replay(projections, options: options)
            if stderrIsTerminal { ProgressLine.clear() }
            for case .failed(let error) in outcomes.map(\.status) { throw error }
            let latest = Dictionary(try store.snapshots().map { ($0.projection, $0) }, uniquingKeysWith: { a, b in a.seq > b.seq ? a : b })
            for projection in projections {
                if let snapshot = latest[projection.name], snapshot.codeHash == projection.codeHash {
                    try out.line(line(snapshot))
                }
            }
            try out.flush()
        }

        private func line(_ s: SnapshotRecord) -> String {
            #"{"projection":\#(json(s.projection)),"seq":\#(s.seq),"max_occurred_at":\#(json(s.maxOccurredAt)),"max_recorded_at":\#(json(s.maxRecordedAt)),"keys":\#(s.keys),"delta_rows":\#(s.deltaRows),"delta_bytes":\#(s.deltaBytes),"milliseconds":\#(s.milliseconds)}"#
        }
    }
}
