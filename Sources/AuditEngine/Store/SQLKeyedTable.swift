import GRDB
import GRDBSQLite

/// A read-only virtual table keyed by its first column, as a projection's table is:
/// declared `WITHOUT ROWID` with a text primary key, and read in key order.
///
/// SQLite is offered two plans: a lookup of `key = ?` (with the column's own collation,
/// BINARY), and a scan in key order that satisfies `ORDER BY key`. SQLite still checks
/// the `key = ?` constraint on each row it gets (`omit` is never set), so a value of
/// another type than text (which the lookup reads as text) selects exactly what it
/// selects in a table.
protocol SQLKeyedTable: AnyObject {
    /// The `CREATE TABLE x(key TEXT PRIMARY KEY, …) WITHOUT ROWID` it declares.
    var declaration: String { get }
    /// About how many rows a scan reads, for SQLite's planner.
    var estimatedRows: Int64 { get }
    /// Its rows in key order, or only `key`'s.
    func scan(key: String?) throws -> any SQLKeyedCursor
}

protocol SQLKeyedCursor: AnyObject {
    var isAtEnd: Bool { get }
    func advance() throws
    /// Sets column `column` of the current row as `result`.
    func result(column: Int32, _ result: SQLResult) throws
}

/// The tables of one module on one connection: `CREATE VIRTUAL TABLE t USING
/// name(ID)` makes the table `table(id)` returns.
protocol SQLKeyedTables: AnyObject {
    func table(id: Int) -> (any SQLKeyedTable)?
}

/// The module that serves `SQLKeyedTables`: the one place of the C calls.
enum SQLKeyedTableModule {
    /// Registers `tables` as module `name` on `db`'s connection (kept alive by SQLite
    /// until the connection closes).
    static func register(_ db: Database, name: String, tables: any SQLKeyedTables) throws {
        let client = Unmanaged.passRetained(Client(tables, name: name)).toOpaque()
        let rc = sqlite3_create_module_v2(db.sqliteConnection, name, module, client) { client in
            if let client { Unmanaged<Client>.fromOpaque(client).release() }
        }
        guard rc == SQLITE_OK else {
            throw StoreError.sqlite(SQLiteFailure(
                code: rc, message: String(cString: sqlite3_errstr(rc)), sql: nil,
                path: SQLConnection.displayPath(db.sqliteConnection), context: "cannot register the \(name) module"))
        }
    }

    private final class Client {
        let tables: any SQLKeyedTables
        let name: String
        init(_ tables: any SQLKeyedTables, name: String) {
            self.tables = tables
            self.name = name
        }
    }

    /// Boxes for the protocol values SQLite holds between calls.
    private final class TableBox {
        let table: any SQLKeyedTable
        init(_ table: any SQLKeyedTable) { self.table = table }
    }

    private final class CursorBox {
        let cursor: any SQLKeyedCursor
        init(_ cursor: any SQLKeyedCursor) { self.cursor = cursor }
    }

    /// The module's functions. Immutable once made, and only read by SQLite, hence
    /// `nonisolated(unsafe)`.
    nonisolated(unsafe) private static let module: UnsafeMutablePointer<sqlite3_module> = {
        let module = UnsafeMutablePointer<sqlite3_module>.allocate(capacity: 1)
        module.initialize(to: sqlite3_module())
        module.pointee.iVersion = 1
        module.pointee.xCreate = connect
        module.pointee.xConnect = connect
        module.pointee.xBestIndex = bestIndex
        module.pointee.xDisconnect = disconnect
        module.pointee.xDestroy = disconnect
        module.pointee.xOpen = open
        module.pointee.xClose = close
        module.pointee.xFilter = filter
        module.pointee.xNext = next
        module.pointee.xEof = eof
        module.pointee.xColumn = column
        module.pointee.xRowid = { _, _ in SQLITE_ERROR }  // WITHOUT ROWID: never called
        return module
    }()

    /// A table: SQLite's struct first, then the Swift object (the layout of a struct
    /// with a C struct as its first stored property puts it at offset 0).
    private struct VTab {
        var base = sqlite3_vtab()
        let table: Unmanaged<TableBox>
    }

    private struct Cursor {
        var base = sqlite3_vtab_cursor()
        let table: Unmanaged<TableBox>
        var scan: Unmanaged<CursorBox>?
    }

    private static func vtab(_ pointer: UnsafeMutablePointer<sqlite3_vtab>?) -> UnsafeMutablePointer<VTab> {
        UnsafeMutableRawPointer(pointer!).assumingMemoryBound(to: VTab.self)
    }

    private static func cursor(_ pointer: UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> UnsafeMutablePointer<Cursor> {
        UnsafeMutableRawPointer(pointer!).assumingMemoryBound(to: Cursor.self)
    }

    /// Sets a table's error message (SQLite frees it) and returns SQLITE_ERROR.
    private static func fail(_ vtab: UnsafeMutablePointer<sqlite3_vtab>?, _ error: Error) -> Int32 {
        guard let vtab else { return SQLITE_ERROR }
        sqlite3_free(vtab.pointee.zErrMsg)
        vtab.pointee.zErrMsg = copy("\(error)")
        return SQLITE_ERROR
    }

    /// `text` in memory from sqlite3_malloc, as SQLite frees messages.
    private static func copy(_ text: String) -> UnsafeMutablePointer<CChar>? {
        let bytes = Array(text.utf8)
        guard let out = sqlite3_malloc(Int32(bytes.count + 1))?.assumingMemoryBound(to: CChar.self) else { return nil }
        bytes.withUnsafeBufferPointer { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        out[bytes.count] = 0
        return out
    }

    private static let connect: @convention(c) (
        OpaquePointer?, UnsafeMutableRawPointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?,
        UnsafeMutablePointer<UnsafeMutablePointer<sqlite3_vtab>?>?, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> Int32 = { db, client, argc, argv, out, error in
        let client = Unmanaged<Client>.fromOpaque(client!).takeUnretainedValue()
        // argv: module, schema, table name, then the arguments: the table's id.
        guard argc == 4, let text = argv?[3], let id = Int(String(cString: text)), let table = client.tables.table(id: id) else {
            error?.pointee = copy("\(client.name) takes the id of a table")
            return SQLITE_ERROR
        }
        let rc = sqlite3_declare_vtab(db, table.declaration)
        guard rc == SQLITE_OK else { return rc }
        let vtab = UnsafeMutablePointer<VTab>.allocate(capacity: 1)
        vtab.initialize(to: VTab(table: Unmanaged.passRetained(TableBox(table))))
        out?.pointee = UnsafeMutableRawPointer(vtab).assumingMemoryBound(to: sqlite3_vtab.self)
        return SQLITE_OK
    }

    private static let disconnect: @convention(c) (UnsafeMutablePointer<sqlite3_vtab>?) -> Int32 = { pointer in
        let vtab = vtab(pointer)
        vtab.pointee.table.release()
        sqlite3_free(vtab.pointee.base.zErrMsg)
        vtab.deinitialize(count: 1)
        vtab.deallocate()
        return SQLITE_OK
    }

    /// idxNum 1: `key = argv[0]`; 0: every key. Both in key order.
    private static let bestIndex: @convention(c) (UnsafeMutablePointer<sqlite3_vtab>?, UnsafeMutablePointer<sqlite3_index_info>?) -> Int32 = { pointer, info in
        let table = vtab(pointer).pointee.table.takeUnretainedValue().table
        let info = info!
        let rows = table.estimatedRows
        info.pointee.idxNum = 0
        info.pointee.estimatedRows = rows
        info.pointee.estimatedCost = Double(rows)
        for i in 0..<Int(info.pointee.nConstraint) {
            let constraint = info.pointee.aConstraint[i]
            guard constraint.iColumn == 0, constraint.usable != 0, Int32(constraint.op) == SQLITE_INDEX_CONSTRAINT_EQ,
                  let collation = sqlite3_vtab_collation(info, Int32(i)), String(cString: collation) == "BINARY"
            else { continue }
            info.pointee.aConstraintUsage[i].argvIndex = 1
            info.pointee.aConstraintUsage[i].omit = 0
            info.pointee.idxNum = 1
            info.pointee.estimatedRows = 1
            info.pointee.estimatedCost = 10
            info.pointee.idxFlags = SQLITE_INDEX_SCAN_UNIQUE
            break
        }
        if info.pointee.nOrderBy == 1, info.pointee.aOrderBy[0].iColumn == 0, info.pointee.aOrderBy[0].desc == 0 {
            info.pointee.orderByConsumed = 1
        }
        return SQLITE_OK
    }

    private static let open: @convention(c) (
        UnsafeMutablePointer<sqlite3_vtab>?, UnsafeMutablePointer<UnsafeMutablePointer<sqlite3_vtab_cursor>?>?
    ) -> Int32 = { pointer, out in
        let cursor = UnsafeMutablePointer<Cursor>.allocate(capacity: 1)
        cursor.initialize(to: Cursor(table: vtab(pointer).pointee.table.retain()))
        out?.pointee = UnsafeMutableRawPointer(cursor).assumingMemoryBound(to: sqlite3_vtab_cursor.self)
        return SQLITE_OK
    }

    private static let close: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> Int32 = { pointer in
        let cursor = cursor(pointer)
        cursor.pointee.scan?.release()
        cursor.pointee.table.release()
        cursor.deinitialize(count: 1)
        cursor.deallocate()
        return SQLITE_OK
    }

    private static let filter: @convention(c) (
        UnsafeMutablePointer<sqlite3_vtab_cursor>?, Int32, UnsafePointer<CChar>?, Int32, UnsafeMutablePointer<OpaquePointer?>?
    ) -> Int32 = { pointer, index, _, argc, argv in
        let cursor = cursor(pointer)
        cursor.pointee.scan?.release()
        cursor.pointee.scan = nil
        var key: String?
        if index == 1, argc == 1, let argument = argv?[0] {
            // NULL equals nothing; anything else is compared as text (SQLite checks each row).
            let value = SQLiteValue(handle: argument)
            guard value.storageClass != .null else { return SQLITE_OK }
            key = String(decoding: value.text, as: UTF8.self)
        }
        do {
            let scan = try cursor.pointee.table.takeUnretainedValue().table.scan(key: key)
            cursor.pointee.scan = Unmanaged.passRetained(CursorBox(scan))
        } catch {
            return fail(cursor.pointee.base.pVtab, error)
        }
        return SQLITE_OK
    }

    private static let next: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> Int32 = { pointer in
        let cursor = cursor(pointer)
        do {
            try cursor.pointee.scan?.takeUnretainedValue().cursor.advance()
        } catch {
            return fail(cursor.pointee.base.pVtab, error)
        }
        return SQLITE_OK
    }

    private static let eof: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> Int32 = { pointer in
        guard let scan = cursor(pointer).pointee.scan else { return 1 }
        return scan.takeUnretainedValue().cursor.isAtEnd ? 1 : 0
    }

    private static let column: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?, OpaquePointer?, Int32) -> Int32 = { pointer, context, index in
        let cursor = cursor(pointer)
        do {
            try cursor.pointee.scan!.takeUnretainedValue().cursor.result(column: index, SQLResult(context: context))
        } catch {
            return fail(cursor.pointee.base.pVtab, error)
        }
        return SQLITE_OK
    }
}
