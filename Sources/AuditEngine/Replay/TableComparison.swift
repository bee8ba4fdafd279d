import Foundation
import GRDB

/// How a projection's live table differs from the states rebuilt from the log: keys
/// missing from it, keys it has that the rebuild has not, and keys whose state or
/// declared columns differ.
package struct TableDifferences: Sendable, Equatable {
    package enum Kind: String, Sendable {
        case missing, extra, changed
    }

    package struct Difference: Sendable, Equatable {
        package var key: String
        package var kind: Kind
        /// What differs: "state", a column's name, or how the key is stored.
        package var detail: String
    }

    package var missing = 0
    package var extra = 0
    package var changed = 0
    /// The first differences in key order (at most `TableComparison.listed`).
    package var first: [Difference] = []
    /// Keys the rebuild holds.
    package var keys = 0

    package var isEmpty: Bool { missing == 0 && extra == 0 && changed == 0 }

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
        func rows(_ schema: String) throws -> SQLStatement {
            try SQLStatement(db, "SELECT \(names) FROM \(schema).\(ReadModel.quote(table)) ORDER BY key COLLATE BINARY")
        }
        let rebuilt = try rows("main"), live = try rows("store")
        var differences = TableDifferences()
        var haveRebuilt = try rebuilt.step("cannot read the rebuilt states of \(table)")
        var haveLive = try live.step("cannot read the table \(table)")
        while haveRebuilt || haveLive {
            var order: Int
            if !haveLive {
                order = -1
            } else if live.storageClass(0) != .text {
                // Not text (numbers sort before text, blobs after): never a key the engine wrote.
                differences.add(.extra, displayKey(live), "its key is stored as \(live.storageClass(0)), not text")
                haveLive = try live.step("cannot read the table \(table)")
                continue
            } else if !haveRebuilt {
                order = 1
            } else {
                order = compareBytes(rebuilt.text(0), live.text(0))
            }
            if order < 0 {
                differences.keys += 1
                differences.add(.missing, displayKey(rebuilt), "the rebuild has a state for it, the table none")
                haveRebuilt = try rebuilt.step("cannot read the rebuilt states of \(table)")
            } else if order > 0 {
                differences.add(.extra, displayKey(live), "the table has a state the rebuild has not")
                haveLive = try live.step("cannot read the table \(table)")
            } else {
                differences.keys += 1
                let differing = (1..<Int32(2 + columns.count)).filter { !sameValue(rebuilt, live, $0) }
                if !differing.isEmpty {
                    let what = differing.map { $0 == 1 ? "state" : "column \(columns[Int($0) - 2].name)" }
                    differences.add(.changed, displayKey(live), what.joined(separator: ", ") + " differ" + (differing.count == 1 ? "s" : ""))
                }
                haveRebuilt = try rebuilt.step("cannot read the rebuilt states of \(table)")
                haveLive = try live.step("cannot read the table \(table)")
            }
        }
        return differences
    }

    /// Whether column `index` holds the same value in both rows: the same storage class
    /// and the same bytes (or number).
    private static func sameValue(_ a: SQLStatement, _ b: SQLStatement, _ index: Int32) -> Bool {
        let type = a.storageClass(index)
        guard type == b.storageClass(index) else { return false }
        switch type {
        case .null: return true
        case .integer: return a.int64(index) == b.int64(index)
        case .real: return a.double(index).bitPattern == b.double(index).bitPattern
        case .blob: return compareBytes(a.blob(index), b.blob(index)) == 0
        case .text: return compareBytes(a.text(index), b.text(index)) == 0
        }
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

    private static func displayKey(_ statement: SQLStatement) -> String {
        switch statement.storageClass(0) {
        case .blob: return "x'" + Hex.encode(Array(statement.blob(0))) + "'"
        case .null: return "NULL"
        case .text, .integer, .real: return statement.string(0)
        }
    }
}
