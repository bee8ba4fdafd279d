import GRDB
import GRDBSQLite

/// The `audit_overlay` virtual-table module: SQLite's side of `StateOverlay`, and the
/// one place of its unsafe calls.
///
/// A table is read-only (no `xUpdate`), declared `WITHOUT ROWID` with `key` as its
/// primary key (as a projection's table), and reads in key order. Its planner
/// interface offers two plans: a lookup of `key = ?` (with SQLite's own collation for
/// the column, BINARY), and a scan in key order that satisfies `ORDER BY key`. SQLite
/// still checks the `key = ?` constraint on each row it gets (`omit` is never set), so
/// a value of another type than text (which the lookup reads as text) selects exactly
/// what it selects in a table.
enum OverlayModule {
    static let name = "audit_overlay"

    /// Registers the module on `db`'s connection for `tables` (kept alive by SQLite
    /// until the connection closes).
    static func register(_ db: Database, tables: OverlayTables) throws {
        let client = Unmanaged.passRetained(tables).toOpaque()
        let rc = sqlite3_create_module_v2(db.sqliteConnection, name, module, client) { client in
            if let client { Unmanaged<OverlayTables>.fromOpaque(client).release() }
        }
        guard rc == SQLITE_OK else { throw StoreError.storage("cannot register the \(name) module: SQLite error \(rc)") }
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
        let table: Unmanaged<OverlayTable>
    }

    private struct Cursor {
        var base = sqlite3_vtab_cursor()
        let table: Unmanaged<OverlayTable>
        var scan: Unmanaged<OverlayScan>?
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
        let tables = Unmanaged<OverlayTables>.fromOpaque(client!).takeUnretainedValue()
        // argv: module, schema, table name, then the arguments: the table's id.
        guard argc == 4, let text = argv?[3], let id = Int(String(cString: text)), let table = tables.table(id: id) else {
            error?.pointee = copy("\(name) takes the id of an overlay")
            return SQLITE_ERROR
        }
        let rc = sqlite3_declare_vtab(db, table.declaration)
        guard rc == SQLITE_OK else { return rc }
        let vtab = UnsafeMutablePointer<VTab>.allocate(capacity: 1)
        vtab.initialize(to: VTab(table: Unmanaged.passRetained(table)))
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
        let table = vtab(pointer).pointee.table.takeUnretainedValue()
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
        if index == 1, argc == 1, let value = argv?[0] {
            // NULL equals nothing; anything else is compared as text (SQLite checks each row).
            guard sqlite3_value_type(value) != SQLITE_NULL else { return SQLITE_OK }
            key = String(decoding: UnsafeRawBufferPointer(start: sqlite3_value_text(value), count: Int(sqlite3_value_bytes(value))), as: UTF8.self)
        }
        do {
            cursor.pointee.scan = Unmanaged.passRetained(try cursor.pointee.table.takeUnretainedValue().scan(key: key))
        } catch {
            return fail(cursor.pointee.base.pVtab, error)
        }
        return SQLITE_OK
    }

    private static let next: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> Int32 = { pointer in
        let cursor = cursor(pointer)
        do {
            try cursor.pointee.scan?.takeUnretainedValue().advance()
        } catch {
            return fail(cursor.pointee.base.pVtab, error)
        }
        return SQLITE_OK
    }

    private static let eof: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?) -> Int32 = { pointer in
        guard let scan = cursor(pointer).pointee.scan else { return 1 }
        return scan.takeUnretainedValue().key == nil ? 1 : 0
    }

    private static let column: @convention(c) (UnsafeMutablePointer<sqlite3_vtab_cursor>?, OpaquePointer?, Int32) -> Int32 = { pointer, context, index in
        let cursor = cursor(pointer)
        let scan = cursor.pointee.scan!.takeUnretainedValue()
        switch index {
        case 0, 1:
            let bytes = index == 0 ? scan.key! : scan.state
            if let text = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) {
                sqlite3_result_text(context, text, Int32(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR)
            } else {
                sqlite3_result_text(context, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
            }
        default:
            do {
                try scan.result(column: Int(index) - 2, context)
            } catch {
                return fail(cursor.pointee.base.pVtab, error)
            }
        }
        return SQLITE_OK
    }
}
