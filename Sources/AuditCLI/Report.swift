import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a series of a query as one self-contained HTML page: a chart over as_of, its table, and what it was made from.",
            discussion: """
                The query runs at the end of each unit from --from to --to, in one pass (as \
                `audit query … --as-of-each`). When it returns one row per point, each numeric \
                column is a line; otherwise --series COL names the column whose values label the \
                lines. The page holds no script and loads nothing: it can be mailed, archived and \
                printed.

                Examples:
                  audit report --sql 'SELECT count(*) AS fines FROM fine_balances' \\
                    --as-of-each year --from 2000-01-01 --to 2005-12-31 --out fines.html
                  audit report --series status --as-of-each year \\
                    --sql 'SELECT status, count(*) AS n FROM fine_balances GROUP BY status' \\
                    --from 2000-01-01 --to 2013-12-31 --out status.html
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var query: QueryText
        @OptionGroup var time: TimeOptions
        @OptionGroup var series: SeriesOptions
        @Option(name: .customLong("series"), help: ArgumentHelp("The column whose values label the lines.", valueName: "column"))
        var label: String?
        @Option(help: "The page's title (default: the query's name, or \"Report\").") var title: String?
        @Option(help: ArgumentHelp("The HTML file to write.", valueName: "file")) var out: String
        @Flag(help: "Fold from seq 1 instead of the newest usable snapshots.") var noSnapshots = false
        @Option(help: ArgumentHelp("Workers for projections keyed by stream.", valueName: "n"))
        var parallel = ProcessInfo.processInfo.activeProcessorCount

        func validate() throws {
            if !series.isSeries { throw ValidationError("a report is a series: give --as-of-each or --known-at-each with --from and --to") }
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
        }

        func run() throws {
            guard let points = try series.points(time) else { return }
            let (text, source, parameters) = try query.load(workspace)
            // Before the read-only open: a read without locks (no -wal file) refuses a
            // database that was written while it read.
            if let name = query.name { Self.record(name, text: text, source: source, global) }
            let store = try openStore(global, access: .readOnly)
            let projections = try workspace.loadableProjections()
            var options = TemporalOptions()
            options.useSnapshots = !noSnapshots
            options.parallel = parallel
            var columns: [String] = [], rows: [[SQLValue]] = [], read: [Projection] = []
            try store.query(
                sql: text, parameters: parameters, source: source, series: points, projections: projections,
                options: options, header: { columns = $0 }, reading: { read = $0 }, row: { rows.append($0) })
            let chart = try ReportLines(columns: columns, rows: rows, boundaries: points.boundaries, label: label, source: source)
            let head = try store.head()
            var selection = [(query.name.map { "query \($0)" } ?? "query", text.trimmingCharacters(in: .whitespacesAndNewlines))]
            if !parameters.isEmpty { selection.append(("parameters", parameters.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " "))) }
            let unit = points.unit.rawValue
            selection.append(("series", "as of the end of each \(unit) (UTC) from \(points.from) to \(points.to): \(points.boundaries.count) points"))
            let now = Timestamp.now()
            selection.append(("known at", points.knownAtEach ? "each point (the series as it was reported at the time)" : (points.knownAt ?? now).description))
            let page = ReportPage(
                title: title ?? query.name ?? "Report", chart: chart, unit: points.unit, columns: columns, rows: rows, selection: selection,
                code: read.map { ($0.name, $0.codeHash) }, head: (head.seq, Hex.encode(head.hash)),
                made: "\(now) by audit \(AuditVersion.current)")
            try Self.write(page.html, to: out)
        }

        /// Records the saved query's text in the database, when this process may write
        /// it, so that `--as-reported` can rerun the text of the time (`QueryTexts`);
        /// otherwise says that it was not.
        static func record(_ name: String, text: String, source: String, _ global: GlobalOptions) {
            let path = global.databasePath
            do {
                guard !global.readOnly, EventStore.mayWrite(path) else {
                    throw QueryError(source: source, message: "the database is read-only")
                }
                try EventStore(path: path).recordQuery(name, text: text, path: source, actor: "audit report")
            } catch {
                warn("audit: the text of query \(name) was not recorded (\(error)): `--as-reported` will not find it")
            }
        }

        /// Writes `html` whole or not at all: into a file beside `path`, renamed over it.
        static func write(_ html: String, to path: String) throws {
            let url = URL(fileURLWithPath: path)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
            do {
                try Data(html.utf8).write(to: temporary)
                if FileManager.default.fileExists(atPath: url.path) {
                    _ = try FileManager.default.replaceItemAt(url, withItemAt: temporary)
                } else {
                    try FileManager.default.moveItem(at: temporary, to: url)
                }
            } catch {
                try? FileManager.default.removeItem(at: temporary)
                throw ReportWriteFailure(path: path, reason: "\(error.localizedDescription)")
            }
        }
    }
}

/// The report's file could not be written (exit 1); nothing is left at its path.
struct ReportWriteFailure: AuditFailure {
    var path: String
    var reason: String
    var category: FailureCategory { .failure }
    var description: String { "cannot write the report to \(path): \(reason)" }
}
