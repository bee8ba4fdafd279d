import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct State: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a projection's state: every key, or one; now, or at a point in time.",
            discussion: """
                With --format jsonl (the default), one line per key, {"key":…,"state":{…}}, keys sorted. \
                Without a time, it reads the projection's table, brought up to date first (see `audit \
                query`: --no-catch-up, --wait, --strict-code, --stale-ok). With --as-of \
                and/or --known-at, it folds the selected events from the newest usable snapshot into a \
                temporary database, leaving the tables alone. --history lists how KEY's state changed.

                Examples:
                  audit state order_totals
                  audit state fine_balances S45359 --format json
                  audit state fine_balances --as-of 2005-12-31
                  audit state fine_balances S45359 --history

                A series prints the states at the end of each day, week, month, quarter or year, \
                with a leading as_of; --compare-known-at lists the keys added, removed and changed \
                between what was known at --known-at and at that time.

                Examples:
                  audit state fine_balances S45359 --as-of-each year \\
                    --from 2000-01-01 --to 2005-12-31
                  audit state fine_balances --as-of 2005-12-31 \\
                    --known-at 2024-01-01 --compare-known-at 2024-06-30
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var time: TimeOptions
        @OptionGroup var series: SeriesOptions
        @OptionGroup var reported: AsReportedOption
        @Option(help: ArgumentHelp(
            "Compare with what was known at this time (a restatement): the keys added, removed and changed since --known-at. \(TimeArgument.selectingForms).",
            valueName: "time"), transform: TimeArgument.selecting)
        var compareKnownAt: Timestamp?
        @Argument(help: "The projection.", completion: WorkspaceCompletion.projections) var name: String
        @Argument(help: "Only this key.") var key: String?
        @Flag(help: "List how KEY's state changed: the events that changed it, with the state after each (as `audit explain`).")
        var history = false
        @Flag(help: "With a time: fold from seq 1 instead of the newest usable snapshot.") var noSnapshots = false
        @Option(help: ArgumentHelp("With a time: workers for projections keyed by stream.", valueName: "n"))
        var parallel = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "jsonl, json, csv or table.") var format: OutputFormat = .jsonl
        @OptionGroup var spreadsheet: SpreadsheetOptions
        @OptionGroup var current: CatchUpArguments

        func validate() throws {
            if history, key == nil { throw ValidationError("--history needs a KEY") }
            if history, series.isSeries || compareKnownAt != nil {
                throw ValidationError("--history lists one key's changes; it takes no series or --compare-known-at")
            }
            try reported.validate(time, series: series, comparing: compareKnownAt != nil || history)
            if compareKnownAt != nil {
                if time.knownAt == nil { throw ValidationError("--compare-known-at compares with --known-at: give both") }
                if series.isSeries { throw ValidationError("--compare-known-at compares two answers, not a series") }
            }
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
        }

        func run() throws {
            let store = try openStoreForReading(global)
            let name = try KnownProjections(folder: workspace.projections, store: store).require(name)
            if history, let key {
                let projection = try workspace.loadProjections([name])[0].get()
                return try writeHistory(store: store, projection: projection, key: key, time: time, format: format, spreadsheet: spreadsheet)
            }
            let points = try series.points(time)
            if points != nil || compareKnownAt != nil {
                let projection = try workspace.loadProjections([name])[0].get()
                if let points { return try writeSeries(store, projection, points) }
                return try writeRestatement(store, projection)
            }
            var found = false
            let columns = format == .csv || format == .table ? try StateColumns.declared(store, name, time.selection.isCurrent ? nil : workspace) : []
            var writer = try StateWriter(format: format, columns: columns, spreadsheetSafe: try spreadsheet.protects(format))
            // An answer at another time: the keys parked in it, told before its first state
            // (the engine says each on stderr), are marked in its lines.
            func answerParked(_ parked: [String: Int64]) { writer.parked = parked }
            if reported.asReported != nil {
                let (selection, projections) = try reported.projections(store, time)
                guard let projection = projections.first(where: { $0.name == name }) else {
                    throw ProjectionError(projection: name, message: "no build of it was live at \(reported.asReported!) (built later, or before this database kept its code)")
                }
                try store.forEachStateBytes(projection, at: selection, key: key, options: options, parked: answerParked) { key, state in
                    try writer.row(key: key, state: state)
                    found = true
                }
            } else if time.selection.isCurrent {
                writer.parked = Dictionary(try store.parkedKeys(projection: name).map { ($0.key, $0.firstSeq) }, uniquingKeysWith: min)
                if let key, let seq = writer.parked[key] {
                    warn("audit: note: key \(key) of \(name) is parked since seq \(seq): its state is its last good one (see audit dead-letters \(name))")
                }
                try store.forEachState(projection: name, key: key, current: current.options(workspace, global)) { key, state in
                    try writer.row(key: key, state: state)
                    found = true
                }
            } else {
                let projection = try workspace.loadProjections([name])[0].get()
                try store.forEachStateBytes(projection, at: time.selection, key: key, options: options, parked: answerParked) { key, state in
                    try writer.row(key: key, state: state)
                    found = true
                }
            }
            try writer.finish()
            if let key, !found {
                // Parked at its first event: it has no good state yet, which stderr said.
                if writer.parked[key] != nil { return }
                throw ProjectionError(projection: name, message: "no state for key \"\(key)\"")
            }
        }

        private var options: TemporalOptions {
            var options = TemporalOptions()
            options.useSnapshots = !noSnapshots
            options.parallel = parallel
            return options
        }

        /// `as_of`, `key`, `state` at each point.
        private func writeSeries(_ store: EventStore, _ projection: Projection, _ points: SeriesPoints) throws {
            var writer = try ResultWriter(columns: ["as_of", "key", "state"], format: format, rawJSONColumns: ["state"])
            var found = false
            // The keys parked in each point's answer are marked in its lines, as in a single answer.
            var parked: [String: Int64] = [:], keyParked = false
            func pointParked(_ keys: [String: Int64]) {
                parked = keys
                if let key, keys[key] != nil { keyParked = true }
            }
            try store.forEachStateBytes(projection, series: points, key: key, options: options, parked: { pointParked($1) }) {
                asOf, key, state in
                let key = String(decoding: key, as: UTF8.self)
                let mark = parked[key].map { [("parked", #"{"first_seq":\#($0)}"#)] } ?? []
                try writer.row([.text(asOf.description), .text(key), .text(String(decoding: state, as: UTF8.self))], members: mark)
                found = true
            }
            try writer.finish()
            if let key, !found {
                // Parked at its first event at every point: it has no good state, which stderr said.
                if keyParked { return }
                throw ProjectionError(projection: name, message: "no state for key \"\(key)\" at any point of the series")
            }
        }

        /// `change`, `key`, `old`, `new` for each key that differs; in JSON, a key parked
        /// in either answer says so (`old_parked`, `new_parked`), as a single answer does.
        private func writeRestatement(_ store: EventStore, _ projection: Projection) throws {
            var writer = try ResultWriter(columns: ["change", "key", "old", "new"], format: format, rawJSONColumns: ["old", "new"])
            try store.compareStates(
                projection, asOf: time.asOf, knownAt: time.knownAt!, comparedTo: compareKnownAt!, key: key, options: options
            ) { change in
                var marks: [(String, String)] = []
                if let seq = change.oldParked { marks.append(("old_parked", #"{"first_seq":\#(seq)}"#)) }
                if let seq = change.newParked { marks.append(("new_parked", #"{"first_seq":\#(seq)}"#)) }
                try writer.row(
                    [.text(change.change.rawValue), .text(change.key), change.old.map(SQLValue.text) ?? .null, change.new.map(SQLValue.text) ?? .null],
                    members: marks)
            }
            try writer.finish()
        }
    }
}

/// Writes states as `audit state` prints them; CSV and tables spread the declared
/// `columns` between key and state.
struct StateWriter {
    private let format: OutputFormat
    private let columns: [String]
    private var out = Output()
    private var table: TabularWriter?
    private var rows = 0
    /// Parked keys -> first seq not folded: their JSON lines say `"parked":{"first_seq":N}`.
    var parked: [String: Int64] = [:]

    init(format: OutputFormat, columns: [String] = [], spreadsheetSafe: Bool = false) throws {
        self.format = format
        self.columns = columns
        switch format {
        case .jsonl: break
        case .json: try out.line("[")
        case .csv, .table:
            table = TabularWriter(columns: ["key"] + columns + ["state"], format: format)
            table!.spreadsheetSafe = spreadsheetSafe
        }
    }

    mutating func row(key: String, state: String) throws {
        var key = key, state = state
        try key.withUTF8 { key in try state.withUTF8 { try row(key: UnsafeRawBufferPointer(key), state: UnsafeRawBufferPointer($0)) } }
    }

    /// One state, from its bytes (valid during the call).
    mutating func row(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer) throws {
        switch format {
        case .jsonl, .json:
            let comma = format == .json && rows > 0
            try out.line { buffer in
                if comma { buffer.append(UInt8(ascii: ",")) }
                StateLine.append(key: key, state: state, to: &buffer)
                if !parked.isEmpty, let seq = parked[String(decoding: key, as: UTF8.self)] {
                    buffer.removeLast()  // the line's closing brace
                    buffer.append(contentsOf: #","parked":{"first_seq":\#(seq)}}"#.utf8)
                }
            }
        case .csv, .table:
            let state = String(decoding: state, as: UTF8.self)
            try table!.row([String(decoding: key, as: UTF8.self)] + StateColumns.cells(state, columns) + [state])
        }
        rows += 1
    }

    mutating func finish() throws {
        if format == .json { try out.line("]") }
        try out.flush()
        try table?.finish()
    }
}
