import CLuaSandbox
import Foundation
import GRDB

/// Upserts serialised states into a read-model table at a checkpoint.
///
/// A declared column's value is read from the state in C (`avm_json_members`, one scan
/// of the state) and bound, instead of SQLite's json_extract parsing the whole state once
/// per column: measured 0.25 s of the 0.9 s it took to write 490,809 states. A value
/// only json_extract reads exactly as SQLite would — a string with escapes, a float, an
/// object, an array — sends that state to the statement that extracts its columns, so
/// the table holds the same values either way.
///
/// States are written `rowsPerStatement` to a statement (`INSERT … VALUES (…), (…), …`):
/// SQLite's work per statement step was a third of writing 490,000 short states one
/// row at a time (0.51–0.59 s against 0.31–0.38 s in a C test of both, three runs each),
/// and the last checkpoint of a replay, which writes every key, is on its critical path.
final class StateUpsert {
    static let rowsPerStatement = 64

    private let projection: String
    /// One state, its columns extracted by SQLite.
    private let extracting: SQLStatement
    /// One state, and `rowsPerStatement` states, their columns bound.
    private let bound: SQLStatement
    private let boundMany: SQLStatement
    private let names: [UnsafeMutablePointer<CChar>]
    private let lengths: [Int]
    /// States waiting for `boundMany`, and their columns' values (`names.count` each).
    private var pending: [(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer)] = []
    private var values: [avm_json_value]

    init(_ db: Database, target: ReadModelTarget) throws {
        projection = target.projection
        extracting = try SQLStatement(db, target.upsertSQL)
        bound = try SQLStatement(db, target.boundUpsertSQL(rows: 1))
        boundMany = try SQLStatement(db, target.boundUpsertSQL(rows: Self.rowsPerStatement))
        names = target.columns.map { strdup($0.name)! }
        lengths = target.columns.map { $0.name.utf8.count }
        values = Array(repeating: avm_json_value(), count: target.columns.count * Self.rowsPerStatement)
        pending.reserveCapacity(Self.rowsPerStatement)
    }

    deinit { names.forEach { free($0) } }

    /// Writes every state of `run`, each key once.
    func write(_ run: StateRun) throws {
        // The statements bind the run's bytes without a copy: `run` outlives the steps.
        try run.forEach { key, state in try add(key: key, state: state) }
        for (row, (key, state)) in pending.enumerated() {
            try step(bound, rows: [(key, state)], firstValue: row * names.count)
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Queues one state, or writes it at once when only json_extract reads its columns
    /// as SQLite would. Keys are distinct, so the order of the writes does not matter.
    private func add(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer) throws {
        guard readColumns(of: state, into: pending.count * names.count) else {
            try step(extracting, rows: [(key, state)], firstValue: nil)
            return
        }
        pending.append((key, state))
        if pending.count == Self.rowsPerStatement {
            try step(boundMany, rows: pending, firstValue: 0)
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Binds `rows` (and their columns' values from `firstValue` on, unless nil: the
    /// statement extracts them) and steps `statement` once.
    private func step(
        _ statement: SQLStatement, rows: [(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer)], firstValue: Int?
    ) throws {
        let width = firstValue == nil ? 2 : 2 + names.count
        for (row, (key, state)) in rows.enumerated() {
            let base = Int32(row * width)
            statement.bind(base + 1, borrowedText: key)
            statement.bind(base + 2, borrowedText: state)
            guard let firstValue else { continue }
            for column in 0..<names.count {
                let value = values[firstValue + row * names.count + column]
                let index = base + 3 + Int32(column)
                switch Int32(value.kind) {
                case Int32(AVM_JV_INT): statement.bind(index, value.i)
                case Int32(AVM_JV_TEXT): statement.bind(index, borrowedText: value.s, count: Int(value.len))
                default: statement.bindNull(index)  // absent or null: `readColumns` let no other through
                }
            }
        }
        try statement.run("cannot write the state of projection \(projection)")
        statement.reset()
    }

    /// Reads the columns' values of `state` into `values` from `first` on; false when
    /// one is not a plain value (json_extract must read it).
    private func readColumns(of state: UnsafeRawBufferPointer, into first: Int) -> Bool {
        guard !names.isEmpty else { return true }
        guard let json = state.baseAddress?.assumingMemoryBound(to: CChar.self) else { return false }
        let read = names.withUnsafeBufferPointer { names in
            lengths.withUnsafeBufferPointer { lengths in
                values.withUnsafeMutableBufferPointer { values in
                    names.withMemoryRebound(to: UnsafePointer<CChar>?.self) { names in
                        avm_json_members(json, state.count, names.baseAddress, lengths.baseAddress, names.count, values.baseAddress! + first)
                    }
                }
            }
        }
        guard read == 0 else { return false }
        return values[first..<first + names.count].allSatisfy { Int32($0.kind) != Int32(AVM_JV_OTHER) }
    }
}
