import GRDB

/// Where the events a point in time selects end: a seq past which it selects nothing,
/// so that a fold reads no further (reading the rest of the log only to pass over its
/// events was most of a question about an early date, measured).
enum SelectedRange {
    /// For each of `points` (their as-of times ascending, nil last), a seq that every
    /// event it selects is at or before, and as small as the index allows: the head,
    /// bounded by the last event recorded by the point's known-at, and by the last
    /// event that occurred by its as-of.
    ///
    /// Read with `db` (the store attached as `store`), before `events` is shadowed.
    /// - Complexity: for a single point, a scan of the `occurred_at` index up to its
    ///   as-of or of the log back from its head, whichever is estimated shorter; for a
    ///   series, of the index up to the last as-of, each entry once.
    static func ends(_ points: [TemporalSelection], _ db: Database) throws -> [Int64] {
        let head = try ChainHead.seq(db, schema: "store")
        var occurred: Int64 = 0
        var previous: Timestamp?
        return try points.map { point in
            var end = head
            if let knownAt = point.knownAt { end = min(end, try EventFilter.lastSeq(knownAt: knownAt, db)) }
            guard let asOf = point.asOf else { return end }
            if let previous, previous <= asOf {
                occurred = max(occurred, try lastOccurred(in: (previous, asOf), db) ?? 0)
            } else {
                occurred = try lastOccurred(by: asOf, head: head, db) ?? 0
            }
            previous = asOf
            return min(end, occurred)
        }
    }

    /// The last seq of an event that occurred at or before `time`, by the cheaper of
    /// two scans: the `occurred_at` index up to `time`, or the log back from its head to
    /// that event. Which is cheaper is estimated by a binary search over seq as if
    /// `occurred_at` grew with it (it mostly does); the answer is exact either way.
    static func lastOccurred(by time: Timestamp, head: Int64, _ db: Database) throws -> Int64? {
        let bound = time.description
        let occurred = try db.cachedStatement(sql: "SELECT occurred_at FROM store.events WHERE seq = ?")
        var low: Int64 = 0, high = head
        while low < high {
            let mid = low + (high - low + 1) / 2
            if try String.fetchOne(occurred, arguments: [mid]) ?? "" <= bound { low = mid } else { high = mid - 1 }
        }
        if low < head - low, let found = try lastOccurred(in: (nil, time), db) { return found }
        // `+occurred_at`: not the index; SQLite reads back from the largest seq and stops at the first match.
        return try Int64.fetchOne(db, sql: "SELECT max(seq) FROM store.events WHERE +occurred_at <= ?", arguments: [bound])
    }

    /// The last seq of an event that occurred in (range.0, range.1], by the
    /// `occurred_at` index (nil when it has none, or the schema has no such index).
    static func lastOccurred(in range: (Timestamp?, Timestamp), _ db: Database) throws -> Int64? {
        var sql = "SELECT max(seq) FROM store.events INDEXED BY events_by_occurred_at WHERE occurred_at <= :to"
        var arguments: [String: String] = ["to": range.1.description]
        if let from = range.0 {
            sql += " AND occurred_at > :from"
            arguments["from"] = from.description
        }
        do {
            return try Int64.fetchOne(db, sql: sql, arguments: StatementArguments(arguments))
        } catch let error as DatabaseError where error.message?.hasPrefix("no such index") == true {
            return try Int64.fetchOne(db, sql: sql.replacingOccurrences(of: " INDEXED BY events_by_occurred_at", with: ""), arguments: StatementArguments(arguments))
        }
    }
}
