import GRDBSQLite

/// A value SQLite hands over (a column of the current row, a function's or a virtual
/// table's argument): valid until the statement steps, resets or the call returns.
struct SQLiteValue {
    let handle: OpaquePointer?

    var storageClass: StorageClass {
        switch sqlite3_value_type(handle) {
        case SQLITE_INTEGER: return .integer
        case SQLITE_FLOAT: return .real
        case SQLITE_TEXT: return .text
        case SQLITE_BLOB: return .blob
        default: return .null
        }
    }

    var int64: Int64 { sqlite3_value_int64(handle) }

    var double: Double { sqlite3_value_double(handle) }

    /// Its bytes as text, with their exact length (an integer as its digits). Empty for null.
    var text: UnsafeRawBufferPointer {
        let pointer = sqlite3_value_text(handle)
        let count = Int(sqlite3_value_bytes(handle))
        guard let pointer, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }
}

extension SQLStatement {
    /// Column `column` of the current row as a value, to pass on as a result.
    func value(_ column: Int32) -> SQLiteValue { SQLiteValue(handle: sqlite3_column_value(handle, column)) }
}

/// Where a function or a virtual table's column puts its result: SQLite copies text
/// before the call returns.
struct SQLResult {
    let context: OpaquePointer?

    func set(_ value: Int64) { sqlite3_result_int64(context, value) }

    func set(_ value: Double) { sqlite3_result_double(context, value) }

    /// Text of exactly these bytes (NULs kept).
    func set(text bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count > 0 else {
            sqlite3_result_text(context, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
            return
        }
        sqlite3_result_text(context, base, Int32(bytes.count), SQLITE_TRANSIENT_DESTRUCTOR)
    }

    func set(text: String) {
        var text = text
        text.withUTF8 { set(text: UnsafeRawBufferPointer($0)) }
    }

    /// Text of `count` bytes at `pointer`.
    func set(text pointer: UnsafePointer<CChar>?, count: Int) {
        set(text: UnsafeRawBufferPointer(start: pointer, count: pointer == nil ? 0 : count))
    }

    /// The value as it is, storage class and all.
    func set(_ value: SQLiteValue) { sqlite3_result_value(context, value.handle) }

    func setNull() { sqlite3_result_null(context) }
}
