import GRDB

/// A projection's states as one SQL table, without copying them: a *base* — a
/// snapshot's deltas, or a table — overlaid by a table of *changes* (the states a fold
/// changed since the base), merged in key order while SQLite reads it. A key in the
/// changes has its state there; any other key has the base's.
///
/// It is what a point-in-time question reads: the snapshot it starts from plus what
/// the fold after it changed (copying the snapshot's hundreds of thousands of states
/// into a table cost more than the rest of a question). The same piece serves a read
/// of a live table whose lag was folded into a scratch database: base
/// `.table(schema: "store", table: name)`, changes the scratch table.
///
/// The table has the columns of the projection's own (`key`, `state` and the declared
/// columns, with their types), holds each key once and reads in key order, so that a
/// query gives what it gives over a real table of the same states: a declared column's
/// value is the state's field as `json_extract` reads it, with the column's type
/// affinity applied, as a table stores it.
///
/// - Complexity: a scan reads every state of the base and of the changes once (a
///   snapshot's deltas chunk by chunk); `WHERE key = ?` reads one chunk per delta and
///   one row of the changes. Nothing is written.
///
/// Example (in a `TemporaryStates` connection, the store attached as `store`):
///
///     let tables = try OverlayTables(db)
///     try tables.install(StateOverlay(projection: p.name, columns: p.columns,
///         base: .snapshot(view, schema: "store"), changes: .table("main.\"audit_folded_orders\"")), db)
///     try tables.reading(db) { try db.execute(sql: "SELECT count(*) FROM orders") }
struct StateOverlay {
    enum Base {
        /// No base: the changes are every state.
        case none
        /// A snapshot's states (the view must have been found in the reading transaction).
        case snapshot(SnapshotView, schema: String)
        /// The states of a table with the projection's columns (`key`, `state`, declared columns).
        case table(schema: String, table: String)
        /// States in memory, in key order (a snapshot's, loaded: see `BaseStates`).
        case states(StateRun)

        /// The state of `key` in the base, or nil.
        func state(of key: String, _ db: Database) throws -> String? {
            switch self {
            case .none: return nil
            case .snapshot(let view, let schema): return try SnapshotStates.state(db, view, schema: schema, key: key)
            case .table(let schema, let table):
                return try String.fetchOne(
                    db, sql: "SELECT state FROM \(schema).\(ReadModel.quote(table)) WHERE key = ?", arguments: [key])
            case .states: return stateInMemory(of: key)!
            }
        }

        /// Whether its states are in memory (or it has none): `stateInMemory` finds them.
        var isInMemory: Bool {
            switch self {
            case .none, .states: return true
            case .snapshot, .table: return false
            }
        }

        /// The state of `key` in a base in memory (or none), `.some(nil)` when it has
        /// none; nil for a base in a database.
        func stateInMemory(of key: String) -> String?? {
            switch self {
            case .none: return .some(nil)
            case .states(let run): return .some(run.state(of: key))
            case .snapshot, .table: return nil
            }
        }
    }

    /// The name the table gets (in the `temp` schema): the projection's, so that it
    /// shadows the store's table and any table of that name in `main`.
    var projection: String
    var columns: [Projection.Column]
    var base: Base
    /// The states changed since the base.
    var changes: Changes

    enum Changes {
        case none
        /// A schema-qualified, quoted table with the projection's columns.
        case table(String)
        /// States in memory, in key order (a question's fold's: `ChangedStates`).
        case states(StateRun)
    }
}

/// The overlays of one connection: registers the `audit_overlay` virtual-table module
/// on it, creates a table per overlay, and lets their definitions change between
/// statements (a series reads the same tables at every point, its fold advancing
/// between them).
///
/// The tables read the store through the connection's GRDB `Database`, which SQLite
/// does not hand to a module: statements that read them run inside `reading(_:_:)`,
/// which lends it for their duration.
final class OverlayTables: SQLKeyedTables {
    /// The virtual-table module's name.
    static let module = "audit_overlay"

    /// In the order they were made: a table's id, which its `CREATE VIRTUAL TABLE`
    /// names, is its position + 1.
    private var tables: [OverlayTable] = []
    /// The connection's `Database`, while `reading` runs.
    private(set) var database: Database?

    init(_ db: Database) throws {
        try SQLKeyedTableModule.register(db, name: Self.module, tables: self)
    }

    /// Creates the table of `overlay`, or, when it exists, changes what it reads:
    /// statements compiled afterwards, or run again from the start, read the new
    /// definition.
    func install(_ overlay: StateOverlay, _ db: Database) throws {
        if let table = tables.first(where: { $0.overlay.projection == overlay.projection }) {
            table.overlay = overlay
            return
        }
        tables.append(OverlayTable(overlay, tables: self))
        try db.execute(sql: "CREATE VIRTUAL TABLE temp.\(ReadModel.quote(overlay.projection)) USING \(Self.module)(\(tables.count))")
    }

    /// Runs `body`, during which the overlays' tables can be read with `db`.
    func reading<T>(_ db: Database, _ body: () throws -> T) rethrows -> T {
        database = db
        defer { database = nil }
        return try body()
    }

    func table(id: Int) -> (any SQLKeyedTable)? { tables.indices.contains(id - 1) ? tables[id - 1] : nil }
}

/// One overlay's table: its current definition.
final class OverlayTable: SQLKeyedTable {
    var overlay: StateOverlay
    unowned let tables: OverlayTables

    init(_ overlay: StateOverlay, tables: OverlayTables) {
        self.overlay = overlay
        self.tables = tables
    }

    /// The `CREATE TABLE` the module declares for it.
    var declaration: String {
        let columns = ["key TEXT PRIMARY KEY", "state TEXT NOT NULL"]
            + overlay.columns.map { "\(ReadModel.quote($0.name)) \($0.type.uppercased())" }
        return "CREATE TABLE x(\(columns.joined(separator: ", "))) WITHOUT ROWID"
    }

    /// About how many rows a scan reads, for SQLite's planner.
    var estimatedRows: Int64 {
        if case .snapshot(let view, _) = overlay.base { return max(view.record.keys, 1) }
        return 100_000
    }

    /// A scan of its states in key order, or of `key`'s only.
    func scan(key: String?) throws -> any SQLKeyedCursor {
        guard let db = tables.database else {
            throw StoreError.storage("the states of \(overlay.projection) were read outside a question (internal error)")
        }
        if key == nil, let scan = try RunOverlayScan(db, overlay) { return scan }
        return try OverlayScan(db, overlay, key: key)
    }
}
