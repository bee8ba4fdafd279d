import CLuaSandbox
import Foundation
import GRDB
import GRDBSQLite

/// A projection's declared columns read from a state as its table stores them: the
/// state's field as `json_extract` gives it, with the column type's affinity applied
/// (what `INSERT INTO t (c) VALUES (json_extract(state, '$.c'))` leaves in a column of
/// that type).
///
/// Plain values (an integer, a boolean, a string without escapes, null) are read in C
/// in one scan of the state (`avm_json_members`); anything else (a float, a string with
/// escapes) from SQLite's `json_extract`, then given the affinity: a float that is an
/// integer becomes one in an `integer` or `numeric` column, an integer becomes a float
/// in a `real` one, a number becomes text in a `text` one. (A state cannot hold a
/// string, an object or an array in a numeric column, nor an object or an array in a
/// text column: the VM refuses to write one, see `avm_column_accepts`; so text is never
/// converted to a number here.)
final class StateColumns {
    private let columns: [Projection.Column]
    private let names: [UnsafeMutablePointer<CChar>]
    private let lengths: [Int]
    private var values: [avm_json_value]
    /// `SELECT json_extract(?1, '$.a'), json_extract(?1, '$.b'), …` for the other values.
    private let extract: Statement?
    /// Whether the current state's values are in `extract`'s row (C could not read them).
    private var extracted = false

    init(_ columns: [Projection.Column], _ db: Database) throws {
        self.columns = columns
        names = columns.map { strdup($0.name)! }
        lengths = columns.map { $0.name.utf8.count }
        values = Array(repeating: avm_json_value(), count: columns.count)
        extract = columns.isEmpty ? nil : try db.makeStatement(
            sql: "SELECT " + columns.map { "json_extract(?1, '$.\($0.name)')" }.joined(separator: ", "))
    }

    deinit { names.forEach { free($0) } }

    /// Reads the columns of `state` (which must stay valid until the last `result`).
    func read(_ state: UnsafeRawBufferPointer) throws {
        guard let extract else { return }
        let status = names.withUnsafeBufferPointer { names in
            lengths.withUnsafeBufferPointer { lengths in
                names.withMemoryRebound(to: UnsafePointer<CChar>?.self) { names in
                    avm_json_members(
                        state.baseAddress?.assumingMemoryBound(to: CChar.self), state.count, names.baseAddress,
                        lengths.baseAddress, names.count, &values)
                }
            }
        }
        extracted = status != 0 || values.contains { Int32($0.kind) == Int32(AVM_JV_OTHER) }
        guard extracted else { return }
        let stmt = extract.sqliteStatement
        sqlite3_reset(stmt)
        extract.bindText(1, state)
        _ = try extract.stepRow("cannot read the columns of a state")
    }

    /// Sets column `index`'s value as `context`'s result.
    func result(_ index: Int, _ context: OpaquePointer?) {
        let type = columns[index].type
        if extracted, let stmt = extract?.sqliteStatement {
            let value = sqlite3_column_value(stmt, Int32(index))
            switch sqlite3_value_type(value) {
            case SQLITE_FLOAT where type == "integer" || type == "numeric":
                let real = sqlite3_value_double(value)
                // SQLite's integer affinity (sqlite3VdbeIntegerAffinity).
                if let integer = Int64(exactly: real), integer > .min, integer < .max {
                    sqlite3_result_int64(context, integer)
                } else {
                    sqlite3_result_double(context, real)
                }
            case SQLITE_INTEGER where type == "real":
                sqlite3_result_double(context, Double(sqlite3_value_int64(value)))
            case SQLITE_INTEGER where type == "text", SQLITE_FLOAT where type == "text":
                let text = sqlite3_value_text(value)
                sqlite3_result_text(context, UnsafeRawPointer(text)?.assumingMemoryBound(to: CChar.self), sqlite3_value_bytes(value), SQLITE_TRANSIENT_DESTRUCTOR)
            default:
                sqlite3_result_value(context, value)
            }
            return
        }
        let value = values[index]
        switch Int32(value.kind) {
        case Int32(AVM_JV_INT) where type == "real": sqlite3_result_double(context, Double(value.i))
        case Int32(AVM_JV_INT) where type == "text":
            let text = String(value.i)
            sqlite3_result_text(context, text, Int32(text.utf8.count), SQLITE_TRANSIENT_DESTRUCTOR)
        case Int32(AVM_JV_INT): sqlite3_result_int64(context, value.i)
        case Int32(AVM_JV_TEXT): sqlite3_result_text(context, value.s, Int32(value.len), SQLITE_TRANSIENT_DESTRUCTOR)
        default: sqlite3_result_null(context)
        }
    }
}
