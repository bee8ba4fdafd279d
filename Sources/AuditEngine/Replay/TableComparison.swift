import Foundation
import GRDB
import GRDBSQLite

/// How a projection's live table differs from the states rebuilt from the log: keys
/// missing from it, keys it has that the rebuild has not, and keys whose state or
/// declared columns differ.
public struct TableDifferences: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case missing, extra, changed
    }

    public struct Difference: Sendable, Equatable {
        public var key: String
        public var kind: Kind
        /// What differs: "state", a column's name, or how the key is stored.
        public var detail: String
    }

    public var missing = 0
    public var extra = 0
    public var changed = 0
    /// The first differences in key order (at most `TableComparison.listed`).
    public var first: [Difference] = []
    /// Keys the rebuild holds.
    public var keys = 0

    public var isEmpty: Bool { missing == 0 && extra == 0 && changed == 0 }

    mutating func add(_ kind: Kind, _ key: String, _ detail: String) {
        switch kind {
        case .missing: missing += 1
        case .extra: extra += 1
        case .changed: changed += 1
        }
        if first.count < TableComparison.listed { first.append(Difference(key: key, kind: kind, detail: detail)) }
    }
}

/// Compares two projection tables of one connection row by row, in one merge pass over
/// both in key order (their primary key: no sort).
enum TableComparison {
    /// Differences listed by name; the others are only counted.
    static let listed = 20

    /// Compares `rebuilt` (schema `main`) with `live` (schema `store`), on `key`, `state`
    /// and `columns`, every value by storage class and bytes.
    static func compare(_ db: Database, table: String, columns: [Projection.Column]) throws -> TableDifferences {
        let names = (["key", "state"] + columns.map(\.name)).map(ReadModel.quote).joined(separator: ", ")
        func rows(_ schema: String) throws -> Statement {
            try db.makeStatement(sql: "SELECT \(names) FROM \(schema).\(ReadModel.quote(table)) ORDER BY key COLLATE BINARY")
        }
        let rebuilt = try rows("main"), live = try rows("store")
        var differences = TableDifferences()
        var haveRebuilt = try rebuilt.stepRow("cannot read the rebuilt states of \(table)")
        var haveLive = try live.stepRow("cannot read the table \(table)")
        while haveRebuilt || haveLive {
            var order: Int
            if !haveLive {
                order = -1
            } else if sqlite3_column_type(live.sqliteStatement, 0) != SQLITE_TEXT {
                // Not text (numbers sort before text, blobs after): never a key the engine wrote.
                differences.add(.extra, displayKey(live), "its key is stored as \(storageClass(live, 0)), not text")
                haveLive = try live.stepRow("cannot read the table \(table)")
                continue
            } else if !haveRebuilt {
                order = 1
            } else {
                order = compareBytes(rebuilt.textColumn(0), live.textColumn(0))
            }
            if order < 0 {
                differences.keys += 1
                differences.add(.missing, displayKey(rebuilt), "the rebuild has a state for it, the table none")
                haveRebuilt = try rebuilt.stepRow("cannot read the rebuilt states of \(table)")
            } else if order > 0 {
                differences.add(.extra, displayKey(live), "the table has a state the rebuild has not")
                haveLive = try live.stepRow("cannot read the table \(table)")
            } else {
                differences.keys += 1
                let differing = (1..<Int32(2 + columns.count)).filter { !sameValue(rebuilt, live, $0) }
                if !differing.isEmpty {
                    let what = differing.map { $0 == 1 ? "state" : "column \(columns[Int($0) - 2].name)" }
                    differences.add(.changed, displayKey(live), what.joined(separator: ", ") + " differ" + (differing.count == 1 ? "s" : ""))
                }
                haveRebuilt = try rebuilt.stepRow("cannot read the rebuilt states of \(table)")
                haveLive = try live.stepRow("cannot read the table \(table)")
            }
        }
        return differences
    }

    /// Whether column `index` holds the same value in both rows: the same storage class
    /// and the same bytes (or number).
    private static func sameValue(_ a: Statement, _ b: Statement, _ index: Int32) -> Bool {
        let type = sqlite3_column_type(a.sqliteStatement, index)
        guard type == sqlite3_column_type(b.sqliteStatement, index) else { return false }
        switch type {
        case SQLITE_NULL: return true
        case SQLITE_INTEGER: return sqlite3_column_int64(a.sqliteStatement, index) == sqlite3_column_int64(b.sqliteStatement, index)
        case SQLITE_FLOAT:
            return sqlite3_column_double(a.sqliteStatement, index).bitPattern == sqlite3_column_double(b.sqliteStatement, index).bitPattern
        case SQLITE_BLOB: return compareBytes(blobColumn(a, index), blobColumn(b, index)) == 0
        default: return compareBytes(a.textColumn(index), b.textColumn(index)) == 0
        }
    }

    private static func blobColumn(_ statement: Statement, _ index: Int32) -> UnsafeRawBufferPointer {
        let pointer = sqlite3_column_blob(statement.sqliteStatement, index)
        return UnsafeRawBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(statement.sqliteStatement, index)))
    }

    /// memcmp order, shorter first on a common prefix: SQLite's BINARY collation.
    private static func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let common = min(a.count, b.count)
        if common > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, common)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }

    private static func storageClass(_ statement: Statement, _ index: Int32) -> String {
        switch sqlite3_column_type(statement.sqliteStatement, index) {
        case SQLITE_NULL: return "null"
        case SQLITE_INTEGER: return "an integer"
        case SQLITE_FLOAT: return "a real"
        case SQLITE_BLOB: return "a blob"
        default: return "text"
        }
    }

    private static func displayKey(_ statement: Statement) -> String {
        switch sqlite3_column_type(statement.sqliteStatement, 0) {
        case SQLITE_TEXT: return String(decoding: statement.textColumn(0), as: UTF8.self)
        case SQLITE_BLOB: return "x'" + Hex.encode(Array(blobColumn(statement, 0))) + "'"
        case SQLITE_NULL: return "NULL"
        default: return String(cString: sqlite3_column_text(statement.sqliteStatement, 0))
        }
    }
}
