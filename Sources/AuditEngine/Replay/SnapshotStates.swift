import GRDB
import GRDBSQLite

/// A usable snapshot, with the deltas its states are merged from.
struct SnapshotView: Sendable {
    let record: SnapshotRecord
    /// The seqs of the chain's snapshots up to `record.seq`, oldest first: a key's
    /// state at `record.seq` is its row in the last of them that has one.
    let segments: [Int64]
    var chain: Int64 { record.chain }
    var seq: Int64 { record.seq }
}

/// Reading a snapshot's states: merged over its deltas in key order, one key at a
/// time, or copied into a table.
enum SnapshotStates {
    /// Calls `body(key, state)` for every state at the snapshot (or only `key`), in
    /// key order. The buffers are valid during the call only.
    static func forEach(
        _ db: Database, _ view: SnapshotView, schema: String, key: String? = nil,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try SortedStates.merge([cursor(db, view, schema: schema, key: key)], body)
    }

    /// The states at the snapshot (or only `key`) as one cursor, in key order.
    static func cursor(_ db: Database, _ view: SnapshotView, schema: String, key: String? = nil) throws -> MergedStates {
        MergedStates(try view.segments.map { try SegmentCursor(db, schema: schema, chain: view.chain, seq: $0, key: key) })
    }

    /// One key's state at the snapshot, or nil when it has none: the newest delta
    /// holding the key is found first.
    static func state(_ db: Database, _ view: SnapshotView, schema: String, key: String) throws -> String? {
        let statement = try db.cachedStatement(sql: "SELECT state FROM \(schema).snapshot_states WHERE chain = ? AND seq = ? AND key = ?")
        for seq in view.segments.reversed() {
            if let state = try String.fetchOne(statement, arguments: [view.chain, seq, key]) { return state }
        }
        return nil
    }

    /// Fills `target`'s table (empty, or holding only keys the snapshot need not
    /// provide) with the states at the snapshot, in key order.
    static func restore(
        _ db: Database, _ view: SnapshotView, into target: ReadModelTarget, schema: String, key: String? = nil
    ) throws {
        let names = ["key", "state"] + target.columns.map { ReadModel.quote($0.name) }
        let values = ["?1", "?2"] + target.columns.map { "json_extract(?2, '$.\($0.name)')" }
        let insert = try db.makeStatement(sql: """
            INSERT OR IGNORE INTO \(target.quotedTable) (\(names.joined(separator: ", "))) VALUES (\(values.joined(separator: ", ")))
            """)
        try forEach(db, view, schema: schema, key: key) { key, state in
            sqlite3_reset(insert.sqliteStatement)
            insert.bindText(1, key)
            insert.bindText(2, state)
            _ = try insert.stepRow("cannot restore a snapshot of \(view.record.projection)")
        }
    }
}

/// The rows of one delta, in key order.
private final class SegmentCursor: StateCursor {
    private let statement: Statement
    private(set) var key: UnsafeRawBufferPointer?
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)
    private let chain: Int64, seq: Int64

    init(_ db: Database, schema: String, chain: Int64, seq: Int64, key: String?) throws {
        (self.chain, self.seq) = (chain, seq)
        statement = try db.makeStatement(sql: """
            SELECT key, state FROM \(schema).snapshot_states WHERE chain = ? AND seq = ?\(key == nil ? "" : " AND key = ?") ORDER BY key
            """)
        try statement.setArguments(key.map { [chain, seq, $0] } ?? [chain, seq])
        try advance()
    }

    func advance() throws {
        if try statement.stepRow("cannot read the snapshot rows of chain \(chain) at seq \(seq)") {
            key = statement.textColumn(0)
            state = statement.textColumn(1)
        } else {
            key = nil
        }
    }
}
