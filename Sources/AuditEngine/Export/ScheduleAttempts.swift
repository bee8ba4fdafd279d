import GRDB

/// How the scheduler tries a failed slot again: at most `maxAttempts` attempts a slot,
/// each retry 1, 5, 15 and then 60 minutes after the attempt before it failed, and only
/// while the slot is the latest one (a retry that would fall at or after the next slot
/// is not made: the next slot runs instead).
public enum RetryPolicy {
    /// Minutes from a failed attempt to the next: after the first, the second, …
    public static let backoffMinutes: [Int64] = [1, 5, 15, 60]
    /// The first attempt and its retries: 5.
    public static var maxAttempts: Int { backoffMinutes.count + 1 }

    /// When the slot is tried again after `failures` failed attempts, the last of which
    /// ended at `lastFailure`; nil when the attempts are used up.
    static func retry(after failures: Int, lastFailure: Timestamp) -> Timestamp? {
        guard failures >= 1, failures < maxAttempts else { return nil }
        return Timestamp(milliseconds: lastFailure.milliseconds + backoffMinutes[failures - 1] * 60_000)
    }
}

/// One finished attempt of a scheduled slot, as `audit_schedule_attempts` records it.
struct ScheduleAttempt: Equatable {
    enum Outcome: String { case completed, failed }
    var attempt: Int
    /// When it ended, by the scheduler's clock.
    var finishedAt: Timestamp
    var outcome: Outcome
}

/// The scheduler's record of its attempts, one row per finished attempt of a slot. What
/// each run did (its directory, its error) is in `export_runs` and the log; this table
/// holds what the scheduler needs to retry: how often a slot was tried, and when.
enum ScheduleAttempts {
    static func of(_ db: Database, name: String, slot: Timestamp) throws -> [ScheduleAttempt] {
        try Row.fetchAll(
            db, sql: "SELECT attempt, finished_at, outcome FROM audit_schedule_attempts WHERE name = ? AND slot = ? ORDER BY attempt",
            arguments: [name, slot.description]
        ).map { row in
            ScheduleAttempt(
                attempt: row["attempt"], finishedAt: (try? Timestamp(rfc3339: row["finished_at"])) ?? Timestamp(milliseconds: 0),
                outcome: ScheduleAttempt.Outcome(rawValue: row["outcome"]) ?? .failed)
        }
    }

    /// Records the next attempt of `slot` as ended at `at` with `outcome`.
    static func record(_ db: Database, name: String, slot: Timestamp, outcome: ScheduleAttempt.Outcome, at: Timestamp) throws {
        try db.execute(
            sql: """
                INSERT INTO audit_schedule_attempts (name, slot, attempt, finished_at, outcome)
                SELECT ?1, ?2, coalesce(max(attempt), 0) + 1, ?3, ?4 FROM audit_schedule_attempts WHERE name = ?1 AND slot = ?2
                """,
            arguments: [name, slot.description, at.description, outcome.rawValue])
    }
}
