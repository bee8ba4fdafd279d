import CLuaSandbox
import Foundation
import GRDB

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
    private let extract: SQLStatement?
    /// Whether the current state's values are in `extract`'s row (C could not read them).
    private var extracted = false

    init(_ columns: [Projection.Column], _ db: Database) throws {
        self.columns = columns
        names = columns.map { strdup($0.name)! }
        lengths = columns.map { $0.name.utf8.count }
        values = Array(repeating: avm_json_value(), count: columns.count)
        extract = columns.isEmpty ? nil : try SQLStatement(
            db, "SELECT " + columns.map { "json_extract(?1, '$.\($0.name)')" }.joined(separator: ", "))
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
        extract.reset()
        extract.bind(1, text: state)
        _ = try extract.step("cannot read the columns of a state")
    }

    /// Sets column `index`'s value as `result`.
    func result(_ index: Int, _ result: SQLResult) {
        let type = columns[index].type
        if extracted, let extract {
            let value = extract.value(Int32(index))
            switch value.storageClass {
            case .real where type == "integer" || type == "numeric":
                let real = value.double
                // SQLite's integer affinity (sqlite3VdbeIntegerAffinity).
                if let integer = Int64(exactly: real), integer > .min, integer < .max {
                    result.set(integer)
                } else {
                    result.set(real)
                }
            case .integer where type == "real":
                result.set(Double(value.int64))
            case .integer where type == "text", .real where type == "text":
                result.set(text: value.text)
            default:
                result.set(value)
            }
            return
        }
        let value = values[index]
        switch Int32(value.kind) {
        case Int32(AVM_JV_INT) where type == "real": result.set(Double(value.i))
        case Int32(AVM_JV_INT) where type == "text": result.set(text: String(value.i))
        case Int32(AVM_JV_INT): result.set(value.i)
        case Int32(AVM_JV_TEXT): result.set(text: value.s, count: Int(value.len))
        default: result.setNull()
        }
    }
}
