/// What changed between two answers to the same question known at two times: the
/// restatement an auditor asks for ("what did we report for 30 June then, and what do
/// we know about 30 June now").
package enum Restatement {
    package enum Change: String, Sendable {
        case added, removed, changed
    }

    /// One key whose state differs between the earlier and the later knowledge.
    package struct StateChange: Sendable, Equatable {
        package var change: Change
        package var key: String
        /// The state known at the earlier time (nil: the key had none).
        package var old: String?
        /// The state known at the later time (nil: the key has none).
        package var new: String?
        /// The first seq not folded when the key was parked in the earlier answer (its
        /// `old` is then its last good state); nil: not parked.
        package var oldParked: Int64? = nil
        /// As `oldParked`, in the later answer.
        package var newParked: Int64? = nil
    }

    /// The rows of a query's restatement: `change`, then the key columns, then each other
    /// column twice, `old_C` and `new_C` (rows matched by key), or `change` and the
    /// query's columns (a multiset difference of rows).
    package struct QueryChanges: Sendable, Equatable {
        package var columns: [String]
        package var rows: [[SQLValue]]
        /// Whether the rows were matched by the key columns; false: they did not
        /// identify the rows (a key held twice), and the rows are a multiset difference.
        package var matchedByKey: Bool
    }

    /// The changes between `old` and `new` rows of one query with `columns`, matched by
    /// `keys` (column names, compared without case; empty: the first column), in key
    /// order; or, when the key columns hold a key twice in either, a multiset difference
    /// of whole rows (removed, then added, each in the order of its result).
    /// - Throws: `QueryError` naming a key column the query does not return.
    package static func compare(
        columns: [String], old: [[SQLValue]], new: [[SQLValue]], keys: [String], source: String
    ) throws -> QueryChanges {
        let keyIndices = try keyColumns(keys, of: columns, source: source)
        let others = columns.indices.filter { !keyIndices.contains($0) }
        func key(_ row: [SQLValue]) -> [SQLValue] { keyIndices.map { row[$0] } }
        let oldByKey = Dictionary(old.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        let newByKey = Dictionary(new.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        guard oldByKey.count == old.count, newByKey.count == new.count else {
            return QueryChanges(columns: ["change"] + columns, rows: multisetDifference(old, new), matchedByKey: false)
        }
        var rows: [[SQLValue]] = []
        for k in Set(oldByKey.keys).union(newByKey.keys).sorted(by: SQLValue.precedes) {
            let (before, after) = (oldByKey[k], newByKey[k])
            let change: Change
            switch (before, after) {
            case (nil, _?): change = .added
            case (_?, nil): change = .removed
            case (let b?, let a?) where b != a: change = .changed
            default: continue
            }
            rows.append([.text(change.rawValue)] + k + others.flatMap { [before?[$0] ?? .null, after?[$0] ?? .null] })
        }
        let columnNames = ["change"] + keyIndices.map { columns[$0] } + others.flatMap { ["old_" + columns[$0], "new_" + columns[$0]] }
        return QueryChanges(columns: columnNames, rows: rows, matchedByKey: true)
    }

    /// The indices of the key columns named `keys` (empty: the first column) in `columns`.
    /// - Throws: `QueryError` naming a key column the query does not return.
    static func keyColumns(_ keys: [String], of columns: [String], source: String) throws -> [Int] {
        try (keys.isEmpty ? Array(columns.prefix(1)) : keys).map { name in
            guard let index = columns.firstIndex(where: { $0.lowercased() == name.lowercased() }) else {
                throw QueryError(source: source, message: "--key \(name): the query has no such column (it returns \(columns.joined(separator: ", ")))")
            }
            return index
        }
    }

    /// Rows of `old` not matched by an equal row of `new` (removed), then rows of `new`
    /// not matched in `old` (added), each with `change` first.
    private static func multisetDifference(_ old: [[SQLValue]], _ new: [[SQLValue]]) -> [[SQLValue]] {
        var unmatched = Dictionary(new.map { ($0, 1) }, uniquingKeysWith: +)
        var removed: [[SQLValue]] = []
        for row in old {
            if let n = unmatched[row], n > 0 { unmatched[row] = n - 1 } else { removed.append([.text(Change.removed.rawValue)] + row) }
        }
        var added: [[SQLValue]] = []
        for row in new.reversed() {
            guard let n = unmatched[row], n > 0 else { continue }
            unmatched[row] = n - 1
            added.append([.text(Change.added.rawValue)] + row)
        }
        return removed + added.reversed()
    }
}

extension SQLValue {
    /// SQLite's order of values: NULL, then numbers (by value), then text (bytewise),
    /// then blobs (bytewise).
    static func precedes(_ a: [SQLValue], _ b: [SQLValue]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x.precedes(y) }
        return a.count < b.count
    }

    func precedes(_ other: SQLValue) -> Bool {
        func rank(_ v: SQLValue) -> Int {
            switch v {
            case .null: return 0
            case .integer, .real: return 1
            case .text: return 2
            case .blob: return 3
            }
        }
        switch (self, other) {
        case (.integer(let x), .integer(let y)): return x < y
        case (.integer(let x), .real(let y)): return Double(x) < y
        case (.real(let x), .integer(let y)): return x < Double(y)
        case (.real(let x), .real(let y)): return x < y
        case (.text(let x), .text(let y)): return x.utf8.lexicographicallyPrecedes(y.utf8)
        case (.blob(let x), .blob(let y)): return x.lexicographicallyPrecedes(y)
        default: return rank(self) < rank(other)
        }
    }
}
