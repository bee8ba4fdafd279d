import GRDB

/// Which events to read. Every condition given must hold; none given reads the whole log.
public struct EventFilter: Sendable, Equatable {
    public var stream: String?
    public var type: String?
    /// Only events whose `meta.correlation_id` is this.
    public var correlationId: String?
    /// Inclusive.
    public var fromSeq: Int64?
    /// Inclusive.
    public var toSeq: Int64?
    /// Business time: only events with `occurred_at <= asOf`.
    public var asOf: Timestamp?
    /// System time: only events with `recorded_at <= knownAt`.
    public var knownAt: Timestamp?
    public var limit: Int?

    public init(
        stream: String? = nil, type: String? = nil, correlationId: String? = nil, fromSeq: Int64? = nil,
        toSeq: Int64? = nil, asOf: Timestamp? = nil, knownAt: Timestamp? = nil, limit: Int? = nil
    ) {
        self.stream = stream
        self.type = type
        self.correlationId = correlationId
        self.fromSeq = fromSeq
        self.toSeq = toSeq
        self.asOf = asOf
        self.knownAt = knownAt
        self.limit = limit
    }

    /// The SELECT of `columns` for these conditions, in seq order, inside read
    /// transaction `db`, with every text bound with its exact length. Without `limit`:
    /// the caller stops reading (it may drop candidates first, see `forEachEvent`).
    ///
    /// Business time compares as text: the stored form is fixed-width UTC, so text order
    /// is time order and the `occurred_at` index applies. System time becomes a seq
    /// bound (see `lastSeq(knownAt:)`).
    /// - Throws: `StoreError.invalidFilter` for a text holding U+0000, which SQLite's
    ///   text functions would cut there.
    func statement(_ db: Database, columns: String = StoredEvent.columns) throws -> SQLStatement {
        for (name, text) in [("stream", stream), ("type", type), ("correlation id", correlationId)] {
            if let text, text.utf8.contains(0) { throw StoreError.invalidFilter(reason: "the \(name) must not contain U+0000 (NUL)") }
        }
        var conditions: [String] = []
        var texts: [String] = []
        var integers: [Int64] = []
        if let stream { conditions.append("stream = ?"); texts.append(stream) }
        if let type { conditions.append("type = ?"); texts.append(type) }
        if let correlationId {
            conditions.append("seq IN (SELECT seq FROM event_correlations WHERE correlation_id = ?)")
            texts.append(correlationId)
        }
        if let asOf { conditions.append("occurred_at <= ?"); texts.append(asOf.description) }
        if let fromSeq { conditions.append("seq >= ?"); integers.append(fromSeq) }
        var upper = toSeq
        if let knownAt {
            let known = try EventFilter.lastSeq(knownAt: knownAt, db)
            upper = min(upper ?? known, known)
        }
        if let upper { conditions.append("seq <= ?"); integers.append(upper) }
        var sql = "SELECT \(columns) FROM events"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY seq"
        let statement = try SQLStatement(db, sql)
        var index: Int32 = 1
        for text in texts { statement.bind(index, text: text); index += 1 }
        for integer in integers { statement.bind(index, integer); index += 1 }
        return statement
    }

    /// The last seq recorded at or before `time`.
    ///
    /// `recorded_at` never decreases with seq (the writer guarantees it, `verify` checks
    /// it), so the events known at a time are exactly seq 1…k: a binary search finds k.
    /// - Complexity: O(log n) point lookups by seq.
    static func lastSeq(knownAt time: Timestamp, _ db: Database) throws -> Int64 {
        let bound = time.description
        let recorded = try db.cachedStatement(sql: "SELECT recorded_at FROM events WHERE seq = ?")
        var low: Int64 = 0  // recorded_at(low) <= bound, with seq 0 standing before the log
        var high = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events") ?? 0
        while low < high {
            let mid = low + (high - low + 1) / 2
            let at = try String.fetchOne(recorded, arguments: [mid]) ?? ""
            if at <= bound { low = mid } else { high = mid - 1 }
        }
        return low
    }
}
