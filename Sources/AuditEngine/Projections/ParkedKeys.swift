import GRDB

/// A key that a projection with `on_error = "park"` parked: its handler failed
/// deterministically at `firstSeq`, so its state stays as its last good event left it,
/// and that event and the key's later ones are its dead letters (not folded).
public struct ParkedKey: Sendable, Equatable {
    public var projection: String
    public var key: String
    public var firstSeq: Int64
    /// The failure, naming the handler, the file and line, and the event.
    public var error: String
    public var parkedAt: String
    /// Its dead letters folded past so far (at least 1 once the table passed `firstSeq`).
    public var deadLetters: Int
}

/// A key a fold found failing, to be parked (`ProjectionRun.parkRequests`).
struct ParkRequest: Sendable {
    var key: String
    var seq: Int64
    var error: String
}

/// The parked keys and dead letters of one table (`audit_parked_keys`,
/// `audit_dead_letters`): a build's table has its own, promoted with it.
enum ParkedKeys {
    /// Key -> first seq not folded, of the table `table` (live or build).
    static func firstSeqs(_ db: Database, table: String) throws -> [String: Int64] {
        guard try db.tableExists("audit_parked_keys") else { return [:] }  // a database an older build made
        var result: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key, first_seq FROM audit_parked_keys WHERE projection = ?", arguments: [table]) {
            result[row["key"]] = row["first_seq"]
        }
        return result
    }

    /// Key -> (first seq, error) of the table `table`, in `schema`.
    static func errors(_ db: Database, table: String, schema: String = "main") throws -> [String: (seq: Int64, error: String)] {
        guard try db.tableExists("audit_parked_keys", in: schema) else { return [:] }
        var result: [String: (seq: Int64, error: String)] = [:]
        let sql = "SELECT key, first_seq, error FROM \(schema).audit_parked_keys WHERE projection = ?"
        for row in try Row.fetchAll(db, sql: sql, arguments: [table]) {
            result[row["key"]] = (row["first_seq"], row["error"])
        }
        return result
    }

    /// How the parked set a rebuild found differs from a table's (key -> first seq,
    /// error): a line per key that differs, by key, and whether a limit parked every one
    /// of them (on one side), which depends on the limits given; nil when they agree.
    static func compare(
        rebuilt: [String: (seq: Int64, error: String)], stored: [String: (seq: Int64, error: String)]
    ) -> (lines: [String], onLimits: Bool)? {
        var lines: [String] = []
        var onLimits = true
        for key in Set(rebuilt.keys).union(stored.keys).sorted() {
            let (mine, theirs) = (rebuilt[key], stored[key])
            guard mine?.seq != theirs?.seq else { continue }
            switch (mine, theirs) {
            case let (mine?, theirs?): lines.append("key \(key) is parked at seq \(theirs.seq) in the table, at seq \(mine.seq) by the rebuild")
            case let (mine?, nil): lines.append("key \(key) is parked by the rebuild at seq \(mine.seq), not in the table (\(mine.error))")
            case let (nil, theirs?): lines.append("key \(key) is parked in the table at seq \(theirs.seq), not by the rebuild")
            case (nil, nil): break
            }
            onLimits = onLimits && [mine?.error, theirs?.error].contains { $0.map(EventStore.dependsOnLimits) ?? false }
        }
        return lines.isEmpty ? nil : (lines, onLimits)
    }

    /// The parked set the live table of `projection` has, when that table was built by
    /// `codeHash` (a fold with other code cannot know which keys it would park).
    static func firstSeqs(_ db: Database, liveOf projection: Projection) throws -> [String: Int64] {
        guard projection.onError == .park, let live = try ReadModel.record(db, name: projection.name, build: false),
              live.codeHash == projection.codeHash
        else { return [:] }
        return try firstSeqs(db, table: projection.name)
    }

    /// The instruction budget a key was parked by, read from its error ("instruction
    /// budget of N instructions exceeded"); nil when a handler error or another limit
    /// parked it (those do not depend on the limits given).
    static func instructionBudget(inError error: String) -> Int64? {
        guard let range = error.range(of: "instruction budget of ") else { return nil }
        return Int64(error[range.upperBound...].prefix { $0.isASCII && $0.isNumber })
    }

    static func park(_ db: Database, table: String, _ requests: [ParkRequest]) throws {
        let now = Timestamp.now().description
        for request in requests {
            try db.execute(
                sql: "INSERT INTO audit_parked_keys (projection, key, first_seq, error, parked_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [table, request.key, request.seq, request.error, now])
        }
    }

    /// Records dead letters, in the checkpoint's transaction.
    static func record(_ db: Database, table: String, _ letters: [(key: String, seq: Int64)]) throws {
        guard !letters.isEmpty else { return }
        let statement = try db.cachedStatement(sql: "INSERT INTO audit_dead_letters (projection, key, seq) VALUES (?, ?, ?)")
        for letter in letters {
            try statement.execute(arguments: [table, letter.key, letter.seq])
        }
    }

    /// Forgets the parked set of `table` (a build starting from nothing), or of some keys.
    static func clear(_ db: Database, table: String, keys: [String]? = nil) throws {
        guard try db.tableExists("audit_parked_keys") else { return }
        for sqlTable in ["audit_parked_keys", "audit_dead_letters"] {
            if let keys {
                for key in keys {
                    try db.execute(sql: "DELETE FROM \(sqlTable) WHERE projection = ? AND key = ?", arguments: [table, key])
                }
            } else {
                try db.execute(sql: "DELETE FROM \(sqlTable) WHERE projection = ?", arguments: [table])
            }
        }
    }

    /// The build's parked set becomes the live table's, as the build replaces it.
    static func promote(_ db: Database, projection: String) throws {
        guard try db.tableExists("audit_parked_keys") else { return }
        try clear(db, table: projection)
        for sqlTable in ["audit_parked_keys", "audit_dead_letters"] {
            try db.execute(sql: "UPDATE \(sqlTable) SET projection = ? WHERE projection = ?", arguments: [projection, projection + "__build"])
        }
    }

    /// The parked keys of the live tables (of `projection` only, when given), by
    /// projection and first seq, with their dead letters counted.
    static func list(_ db: Database, projection: String? = nil) throws -> [ParkedKey] {
        guard try db.tableExists("audit_parked_keys") else { return [] }
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT p.projection, p.key, p.first_seq, p.error, p.parked_at,
                    (SELECT count(*) FROM audit_dead_letters d WHERE d.projection = p.projection AND d.key = p.key) AS letters
                FROM audit_parked_keys p JOIN projections r ON r.name = p.projection
                WHERE ?1 IS NULL OR p.projection = ?1
                ORDER BY p.projection, p.first_seq, p.key
                """,
            arguments: [projection])
        return rows.map {
            ParkedKey(
                projection: $0["projection"], key: $0["key"], firstSeq: $0["first_seq"], error: $0["error"],
                parkedAt: $0["parked_at"], deadLetters: $0["letters"])
        }
    }
}

/// One dead letter of a parked key: an event not folded.
public struct DeadLetter: Sendable, Equatable {
    public var seq: Int64
    public var type: String
    public var occurredAt: String
}

extension EventStore {
    /// The keys parked in the live tables (of `projection` only, when given), by
    /// projection and first seq.
    public func parkedKeys(projection: String? = nil) throws -> [ParkedKey] {
        try readTransaction { db in try ParkedKeys.list(db, projection: projection) }
    }

    /// The dead letters of one parked key of `projection`'s live table, in seq order.
    /// - Throws: `ProjectionError` when the key is not parked.
    public func deadLetters(projection: String, key: String) throws -> [DeadLetter] {
        try readTransaction { db in
            guard try ParkedKeys.firstSeqs(db, table: projection)[key] != nil else {
                throw ProjectionError(projection: projection, message: "key \(key) is not parked (see audit dead-letters \(projection))")
            }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT d.seq, e.type, e.occurred_at FROM audit_dead_letters d JOIN events e ON e.seq = d.seq
                    WHERE d.projection = ? AND d.key = ? ORDER BY d.seq
                    """,
                arguments: [projection, key]
            ).map { DeadLetter(seq: $0["seq"], type: $0["type"], occurredAt: $0["occurred_at"]) }
        }
    }
}
