/// Which events to read. Every condition given must hold; none given reads the whole log.
public struct EventFilter: Sendable, Equatable {
    public var stream: String?
    public var type: String?
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
        stream: String? = nil, type: String? = nil, fromSeq: Int64? = nil, toSeq: Int64? = nil,
        asOf: Timestamp? = nil, knownAt: Timestamp? = nil, limit: Int? = nil
    ) {
        self.stream = stream
        self.type = type
        self.fromSeq = fromSeq
        self.toSeq = toSeq
        self.asOf = asOf
        self.knownAt = knownAt
        self.limit = limit
    }

    /// The WHERE clause and its arguments. Times compare as text: the stored form is
    /// fixed-width UTC, so text order is time order and the time indexes apply.
    var sql: (where: String, arguments: [String: (any Sendable)]) {
        var conditions: [String] = []
        var arguments: [String: (any Sendable)] = [:]
        if let stream { conditions.append("stream = :stream"); arguments["stream"] = stream }
        if let type { conditions.append("type = :type"); arguments["type"] = type }
        if let fromSeq { conditions.append("seq >= :fromSeq"); arguments["fromSeq"] = fromSeq }
        if let toSeq { conditions.append("seq <= :toSeq"); arguments["toSeq"] = toSeq }
        if let asOf { conditions.append("occurred_at <= :asOf"); arguments["asOf"] = asOf.description }
        if let knownAt { conditions.append("recorded_at <= :knownAt"); arguments["knownAt"] = knownAt.description }
        return (conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "), arguments)
    }
}
