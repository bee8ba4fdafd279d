import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct State: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a projection's state: every key, or one; now, or at a point in time.",
            discussion: """
                With --format jsonl (the default), one line per key, {"key":…,"state":{…}}, keys sorted.
                Without a time, it reads the projection's table, brought up to date first (see `audit query`:
                --no-catch-up, --wait, --strict-code, --stale-ok). With --as-of
                and/or --known-at, it folds the selected events from the newest usable snapshot into a
                temporary database, leaving the tables alone. --history lists how KEY's state changed.
                Examples:
                  audit state order_totals
                  audit state fine_balances S45359 --format json
                  audit state fine_balances --as-of 2005-12-31
                  audit state fine_balances S45359 --history
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @OptionGroup var time: TimeOptions
        @Argument(help: "The projection.") var name: String
        @Argument(help: "Only this key.") var key: String?
        @Flag(help: "List how KEY's state changed: the events that changed it, with the state after each (as `audit explain`).")
        var history = false
        @Flag(help: "With a time: fold from seq 1 instead of the newest usable snapshot.") var noSnapshots = false
        @Option(help: ArgumentHelp("With a time: workers for projections keyed by stream.", valueName: "n"))
        var parallel = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "jsonl, json, csv or table.") var format: OutputFormat = .jsonl
        @OptionGroup var current: CatchUpArguments

        func validate() throws {
            if history, key == nil { throw ValidationError("--history needs a KEY") }
            if parallel < 1 || parallel > 256 { throw ValidationError("--parallel must be from 1 to 256") }
        }

        func run() throws {
            let store = try openStoreForReading(global)
            if history, let key {
                let projection = try workspace.loadProjections([name])[0].get()
                return try writeHistory(store: store, projection: projection, key: key, time: time, format: format)
            }
            var found = false
            var writer = try StateWriter(format: format)
            if time.selection.isCurrent {
                try store.forEachState(projection: name, key: key, current: current.options(workspace)) { key, state in
                    try writer.row(key: key, state: state)
                    found = true
                }
            } else {
                let projection = try workspace.loadProjections([name])[0].get()
                var options = TemporalOptions()
                options.useSnapshots = !noSnapshots
                options.parallel = parallel
                try store.forEachStateBytes(projection, at: time.selection, key: key, options: options) { key, state in
                    try writer.row(key: key, state: state)
                    found = true
                }
            }
            try writer.finish()
            if let key, !found {
                throw ProjectionError(projection: name, message: "no state for key \"\(key)\"")
            }
        }
    }
}

/// Writes states as `audit state` prints them.
struct StateWriter {
    private let format: OutputFormat
    private var out = Output()
    private var table: TabularWriter?
    private var rows = 0

    init(format: OutputFormat) throws {
        self.format = format
        switch format {
        case .jsonl: break
        case .json: try out.line("[")
        case .csv, .table: table = TabularWriter(columns: ["key", "state"], format: format)
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
            }
        case .csv, .table:
            try table!.row([String(decoding: key, as: UTF8.self), String(decoding: state, as: UTF8.self)])
        }
        rows += 1
    }

    mutating func finish() throws {
        if format == .json { try out.line("]") }
        try out.flush()
        try table?.finish()
    }
}
