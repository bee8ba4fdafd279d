import GRDB
import GRDBSQLite

/// The few raw SQLite calls of the measured hot loops (writing states, merging
/// snapshot rows), on a GRDB statement: binding bytes without a String, and stepping
/// with the error turned into a Swift error.
extension Statement {
    /// Binds `bytes` as text at `index` (SQLite copies them).
    func bindText(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        if let pointer = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) {
            sqlite3_bind_text(sqliteStatement, index, pointer, Int32(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR)
        } else {
            sqlite3_bind_text(sqliteStatement, index, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
        }
    }

    /// Steps once: true on a row, false when done.
    func stepRow(_ what: @autoclosure () -> String) throws -> Bool {
        let rc = sqlite3_step(sqliteStatement)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(sqliteStatement)))
        sqlite3_reset(sqliteStatement)
        throw StoreError.storage("\(what()): SQLite error \(rc): \(message)")
    }

    /// Column `index` of the current row as bytes (valid until the next step).
    func textColumn(_ index: Int32) -> UnsafeRawBufferPointer {
        let pointer = sqlite3_column_text(sqliteStatement, index)
        return UnsafeRawBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(sqliteStatement, index)))
    }
}
