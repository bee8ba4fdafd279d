import GRDB

/// `verify`'s check of the indexes of `events`. Queries such as `--type` and
/// `--as-of` read an index, not the table; an index that does not hold exactly the
/// table's values (made partial or over another expression and its SQL then edited
/// back with `writable_schema`, or its pages edited) would hide events from them while
/// the table verifies.
///
/// Each index is read whole, served from the index alone, and its entries compared as
/// a multiset with the entries the table's rows give: a sum of keyed hashes, with a
/// random key drawn for each run, so that entries cannot be chosen to cancel out.
/// (`PRAGMA integrity_check` would do it too, at more than the whole of verify's cost.)
struct IndexCheck {
    /// An index of `events`: its name and the columns of one entry, as the scan reads
    /// them: a text, an integer and, for (stream, version), a second integer.
    struct Index {
        var name: String
        var columns: String
        var integers: Int32
    }

    static let indexes: [Index] = [
        Index(name: "sqlite_autoindex_events_1", columns: "id, seq", integers: 1),
        Index(name: "sqlite_autoindex_events_2", columns: "stream, seq, version", integers: 2),
        Index(name: "events_by_type", columns: "type, seq", integers: 1),
        Index(name: "events_by_occurred_at", columns: "occurred_at, seq", integers: 1),
    ]

    /// The table's side: per index, the sum of its rows' entries.
    private var sums = [UInt64](repeating: 0, count: IndexCheck.indexes.count)
    private let key = (UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max))

    /// Adds the entries of the current row of `ChainCheck`'s SELECT (columns 0 seq,
    /// 1 id, 2 stream, 3 version, 4 type, 5 occurred_at).
    mutating func add(row: SQLStatement) {
        sums[0] &+= entry(row, text: 1, integer: 0)
        sums[1] &+= entry(row, text: 2, integer: 0, second: 3)
        sums[2] &+= entry(row, text: 4, integer: 0)
        sums[3] &+= entry(row, text: 5, integer: 0)
    }

    /// Reads each index of `present` whole and reports those whose entries differ from
    /// the `rows` events'.
    func check(_ db: Database, present: Set<String>, rows: Int64, into check: inout ChainCheck) throws {
        for (number, index) in Self.indexes.enumerated() where present.contains(index.name) {
            let scan = try SQLStatement(db, "SELECT \(index.columns) FROM events INDEXED BY \(index.name)")
            var sum: UInt64 = 0
            var count: Int64 = 0
            while try scan.step() {
                sum &+= entry(scan, text: 0, integer: 1, second: index.integers > 1 ? 2 : nil)
                count &+= 1
            }
            if count != rows || sum != sums[number] {
                check.add(
                    seq: nil,
                    "the index \(index.name) does not hold the events' values (\(count) entries for \(rows) events): it was changed outside SQLite, so queries that read it miss or invent events")
            }
        }
    }

    /// The keyed hash of one index entry: each value's storage class and bytes.
    private func entry(_ row: SQLStatement, text: Int32, integer: Int32, second: Int32? = nil) -> UInt64 {
        var hasher = Hasher()
        hasher.combine(key.0)
        hasher.combine(key.1)
        hasher.combine(row.storageClass(text))
        hasher.combine(bytes: row.text(text))
        hasher.combine(row.storageClass(integer))
        hasher.combine(row.int64(integer))
        if let second {
            hasher.combine(row.storageClass(second))
            hasher.combine(row.int64(second))
        }
        return UInt64(bitPattern: Int64(hasher.finalize()))
    }
}
