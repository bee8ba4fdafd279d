import GRDB
import GRDBSQLite

/// An SQLite failure: SQLite's result code and message, the SQL that was running and
/// the database file it ran on.
public struct SQLiteFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// SQLite's extended result code (`SQLITE_CORRUPT_INDEX`, …).
    public var code: Int32
    public var message: String
    /// The statement that failed, when one did.
    public var sql: String?
    /// The database file.
    public var path: String

    public init(code: Int32, message: String, sql: String?, path: String) {
        self.code = code
        self.message = message
        self.sql = sql
        self.path = path
    }

    public var description: String {
        var text = "\(path): SQLite error \(code): \(message)"
        if let sql { text += " - while executing `\(sql)`" }
        return text
    }

    /// The primary result code (`SQLITE_CORRUPT` for `SQLITE_CORRUPT_INDEX`).
    public var primaryCode: Int32 { code & 0xFF }

    /// The file's content is damaged or is not a database: a finding about the file,
    /// not a failure of the machine.
    var isDamage: Bool {
        [SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_FORMAT, SQLITE_TOOBIG].contains(primaryCode)
    }

    /// The machine failed: I/O, a full disk, memory, a lock held too long.
    var isMachineFailure: Bool {
        [SQLITE_IOERR, SQLITE_FULL, SQLITE_NOMEM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_INTERRUPT]
            .contains(primaryCode)
    }

    var isReadOnly: Bool { primaryCode == SQLITE_READONLY }

    /// The failure GRDB reported, on the database at `path`.
    init(_ error: DatabaseError, path: String) {
        self.init(code: error.extendedResultCode.rawValue, message: error.message ?? "\(error)", sql: error.sql, path: path)
    }
}

/// The kinds of value SQLite stores (its storage classes).
enum StorageClass: Sendable, Hashable, CustomStringConvertible {
    case integer, real, text, blob, null

    var description: String {
        switch self {
        case .integer: return "an integer"
        case .real: return "a real number"
        case .text: return "text"
        case .blob: return "a blob"
        case .null: return "null"
        }
    }
}

/// A prepared statement on a GRDB connection, for the engine's own SQL where it steps
/// rows itself: text and blobs are bound and read with explicit lengths (so a NUL in
/// a value neither cuts it nor ends it), values are read in the storage class they
/// have, not coerced, and every failure carries the SQL and the database's path
/// instead of a flattened message.
///
/// Reads of text and blob columns are valid until the next `step()` or `reset()`.
final class SQLStatement {
    /// GRDB's statement, which owns the `sqlite3_stmt` and finalises it.
    private let statement: Statement
    let handle: OpaquePointer
    let sql: String
    let path: String
    /// The first failed bind since the last reset: reported by the next `step()`.
    private var bindFailure = SQLITE_OK

    /// Prepares `sql` on `db` (`cached`: reuses GRDB's cached statement of that SQL).
    init(_ db: Database, _ sql: String, cached: Bool = false, path: String? = nil) throws {
        self.sql = sql
        self.path = path ?? db.displayPath
        do {
            statement = cached ? try db.cachedStatement(sql: sql) : try db.makeStatement(sql: sql)
        } catch let error as DatabaseError {
            throw StoreError.sqlite(SQLiteFailure(error, path: self.path))
        }
        handle = statement.sqliteStatement
        sqlite3_reset(handle)
    }

    // MARK: Binding (1-based indexes)

    func bind(_ index: Int32, _ value: Int64) {
        note(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, text: String) {
        var text = text
        text.withUTF8 { bind(index, text: UnsafeRawBufferPointer($0)) }
    }

    /// Binds `bytes` as text, exactly these bytes (SQLite copies them).
    func bind(_ index: Int32, text bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0, let count = Int32(exactly: bytes.count) {
            note(sqlite3_bind_text(handle, index, base.assumingMemoryBound(to: CChar.self), count, SQLITE_TRANSIENT_DESTRUCTOR))
        } else if bytes.count > 0 {
            note(SQLITE_TOOBIG)
        } else {
            note(sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT_DESTRUCTOR))
        }
    }

    func bind(_ index: Int32, blob: [UInt8]) {
        blob.withUnsafeBytes { bytes in
            if let count = Int32(exactly: bytes.count) {
                note(sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), count, SQLITE_TRANSIENT_DESTRUCTOR))
            } else {
                note(SQLITE_TOOBIG)
            }
        }
    }

    /// The 1-based index of the parameter `:name` (0 when the SQL has none).
    func index(of name: String) -> Int32 { sqlite3_bind_parameter_index(handle, name) }

    private func note(_ rc: Int32) {
        if rc != SQLITE_OK, bindFailure == SQLITE_OK { bindFailure = rc }
    }

    // MARK: Stepping

    /// Steps once: true on a row, false when the statement is done.
    func step() throws -> Bool {
        if bindFailure != SQLITE_OK {
            let rc = bindFailure
            bindFailure = SQLITE_OK
            throw StoreError.sqlite(SQLiteFailure(code: rc, message: String(cString: sqlite3_errstr(rc)), sql: sql, path: path))
        }
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let connection = sqlite3_db_handle(handle)
        let failure = SQLiteFailure(
            code: sqlite3_extended_errcode(connection), message: String(cString: sqlite3_errmsg(connection)), sql: sql, path: path)
        sqlite3_reset(handle)
        throw StoreError.sqlite(failure)
    }

    /// Steps to the end of a statement that returns no rows.
    func run() throws {
        while try step() {}
    }

    /// Rows the last INSERT, UPDATE or DELETE on this statement's connection changed.
    var changes: Int32 { sqlite3_changes(sqlite3_db_handle(handle)) }

    /// Makes the statement ready to run again; bindings are kept.
    func reset() {
        sqlite3_reset(handle)
        bindFailure = SQLITE_OK
    }

    // MARK: Reading the current row (0-based columns)

    func storageClass(_ column: Int32) -> StorageClass {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return .integer
        case SQLITE_FLOAT: return .real
        case SQLITE_TEXT: return .text
        case SQLITE_BLOB: return .blob
        default: return .null
        }
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    /// The value's bytes as text (an integer as its decimal digits, a blob's bytes as
    /// they are), with its exact length: NULs inside are kept. Empty for null.
    func text(_ column: Int32) -> UnsafeRawBufferPointer {
        let pointer = sqlite3_column_text(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let pointer, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }

    /// The value's bytes as a blob, with its exact length. Empty for null.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let pointer, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }

    /// The value as a String, from its exact bytes (NULs kept; invalid UTF-8 replaced
    /// by U+FFFD, which only `verify` needs to see, and sees as bytes).
    func string(_ column: Int32) -> String {
        String(decoding: text(column), as: UTF8.self)
    }

    /// The value's bytes, copied.
    func bytes(_ column: Int32) -> [UInt8] { [UInt8](text(column)) }
}

/// SQLite's SQLITE_TRANSIENT: makes SQLite copy a bound value before the call returns.
let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension Database {
    /// The main database file's path (without the `file:` URI a read-only open may use).
    var displayPath: String {
        guard let name = sqlite3_db_filename(sqliteConnection, "main") else { return "the database" }
        let path = String(cString: name)
        return path.isEmpty ? "a temporary database" : path
    }
}
