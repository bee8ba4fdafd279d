import GRDB

/// One scan of an overlay's table: the base's states and the changes', merged in key
/// order, a key of the changes replacing the base's; and the current row's declared
/// columns, read from the table that holds the row, or else from its state.
final class OverlayScan: SQLKeyedCursor {
    /// The base's states (a snapshot's deltas merged, or a table's rows), or nil.
    private let base: (any StateCursor)?
    /// The base's rows when it is a table: their columns are read from it.
    private let baseRows: StatementCursor?
    private let changes: (any StateCursor)?
    /// The changes' rows when they are a table: their columns are read from it.
    private let changeRows: StatementCursor?
    private let columns: StateColumns
    /// The source of the current row.
    private var current: (any StateCursor)?
    private var currentRows: StatementCursor?
    /// The current row's columns, read from its state on first use (`currentRows` nil).
    private var columnsRead = false

    init(_ db: Database, _ overlay: StateOverlay, key: String?) throws {
        columns = try StateColumns(overlay.columns, db)
        func rows(_ table: String, _ what: String) throws -> StatementCursor {
            let names = (["key", "state"] + overlay.columns.map { ReadModel.quote($0.name) }).joined(separator: ", ")
            let statement = try db.makeStatement(
                sql: "SELECT \(names) FROM \(table)\(key == nil ? "" : " WHERE key = ?") ORDER BY key")
            if let key { try statement.setArguments([key]) }
            return try StatementCursor(statement, reading: what)
        }
        switch overlay.base {
        case .none:
            base = nil
            baseRows = nil
        case .snapshot(let view, let schema):
            base = MergedStates(try SnapshotStates.deltas(db, view, schema: schema, key: key))
            baseRows = nil
        case .table(let schema, let table):
            let cursor = try rows("\(schema).\(ReadModel.quote(table))", "the states of \(overlay.projection)")
            base = cursor
            baseRows = cursor
        case .states(let run):
            base = RunCursor(run, key: key)
            baseRows = nil
        }
        switch overlay.changes {
        case .none:
            (changes, changeRows) = (nil, nil)
        case .table(let table):
            let cursor = try rows(table, "the folded states of \(overlay.projection)")
            (changes, changeRows) = (cursor, cursor)
        case .states(let run):
            (changes, changeRows) = (RunCursor(run, key: key), nil)
        }
        pick()
    }

    var key: UnsafeRawBufferPointer? { current?.key }
    var state: UnsafeRawBufferPointer { current!.state }
    var isAtEnd: Bool { current?.key == nil }

    func advance() throws {
        // Both sources at the current key move on (the changes' row replaced the base's).
        let key = current!.key!
        if let base, let k = base.key, SortedStates.compare(k, key) == 0 { try base.advance() }
        if let changes, let k = changes.key, SortedStates.compare(k, key) == 0 { try changes.advance() }
        pick()
    }

    /// The source with the smallest key; on a tie, the changes.
    private func pick() {
        columnsRead = false
        switch (base?.key, changes?.key) {
        case (nil, nil): current = nil
        case (_?, nil): current = base
        case (nil, _?): current = changes
        case (let b?, let c?): current = SortedStates.compare(b, c) < 0 ? base : changes
        }
        currentRows = current == nil ? nil : (current === changes ? changeRows : (current === baseRows ? baseRows : nil))
    }

    /// Sets column `column` of the current row (key, state, then the declared columns)
    /// as `result`.
    func result(column: Int32, _ result: SQLResult) throws {
        switch column {
        case 0: result.set(text: key!)
        case 1: result.set(text: state)
        default:
            let index = Int(column) - 2
            if let rows = currentRows {
                result.set(rows.statement.value(Int32(2 + index)))
                return
            }
            if !columnsRead {
                try columns.read(state)
                columnsRead = true
            }
            columns.result(index, result)
        }
    }
}

/// The states of a run in key order, or only one key's (found by the run's index).
final class RunCursor: StateCursor {
    private let run: StateRun
    private var records: StateRecords?
    /// The key looked up, owned here (the run holds no copy to point at).
    private let wanted: UnsafeMutableRawBufferPointer?
    private(set) var key: UnsafeRawBufferPointer?
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)

    init(_ run: StateRun, key: String? = nil) {
        self.run = run
        guard let key else {
            wanted = nil
            records = run.recordsInOrder
            advance()
            return
        }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(key.utf8.count, 1), alignment: 1)
        let wanted = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<key.utf8.count])
        _ = wanted.initializeMemory(as: UInt8.self, from: key.utf8)
        self.wanted = bytes
        let lookup = UnsafeRawBufferPointer(wanted)
        if let state = run.state(forKey: lookup, hash: KeyIndex.hash(lookup)) { (self.key, self.state) = (lookup, state) }
    }

    deinit { wanted?.deallocate() }

    func advance() {
        // A run's records were written by the engine: they are well formed.
        guard let next = try? records?.next() else {
            key = nil
            return
        }
        (key, state) = next
    }
}
