import GRDB

/// What the last replay (or read's catch-up) that moved a projection did: the seqs it
/// passed and the time the replay took, for `audit projections`.
public struct ReplayStats: Sendable, Equatable {
    public var projection: String
    public var finishedAt: String
    public var fromSeq: Int64
    public var toSeq: Int64
    public var seconds: Double

    /// Seqs of the log passed per second (nil when it took no measurable time).
    public var eventsPerSecond: Double? {
        seconds > 0 ? Double(toSeq - fromSeq) / seconds : nil
    }
}

extension ReplayStats {
    /// Records that a replay (or a follower's build) moved `projection` from `from` to
    /// `to` in `seconds`, replacing what was recorded of it.
    static func record(_ db: Database, projection: String, from: Int64, to: Int64, seconds: Double) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO audit_replay_stats (projection, finished_at, from_seq, to_seq, seconds) VALUES (?, ?, ?, ?, ?)",
            arguments: [projection, Timestamp.now().description, from, to, seconds])
    }
}

extension EventStore {
    /// The last replay stats of each projection that has some, by name (none on a
    /// database an older build made).
    public func replayStats() throws -> [String: ReplayStats] {
        try readTransaction { db in
            var result: [String: ReplayStats] = [:]
            guard try db.tableExists("audit_replay_stats") else { return result }
            for row in try Row.fetchAll(db, sql: "SELECT * FROM audit_replay_stats") {
                let stats = ReplayStats(
                    projection: row["projection"], finishedAt: row["finished_at"], fromSeq: row["from_seq"], toSeq: row["to_seq"],
                    seconds: row["seconds"])
                result[stats.projection] = stats
            }
            return result
        }
    }
}
