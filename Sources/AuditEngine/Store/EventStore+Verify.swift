import Foundation
import GRDB

extension EventStore {
    /// Verifies the database at `path`, opened read-only (see `verify(progress:)`):
    /// nothing is written, not even beside it.
    ///
    /// A file that is not an audit database (empty, not SQLite, damaged beyond
    /// opening) is damage too. An immutable read that saw a writer change the file is
    /// run again (at most three times).
    /// - Throws: `IntegrityFailure` for any damage; `StoreError` when the machine
    ///   failed or nothing is at `path`.
    public static func verify(path: String, progress: (@Sendable (UpgradeProgress) -> Void)? = nil) throws -> VerifyReport {
        try check(path: path, progress: progress).get()
    }

    /// As `verify(path:progress:)`, with the damage found returned, not thrown (a
    /// caller checking many files pays for no thrown error per damaged one).
    static func check(path: String, progress: (@Sendable (UpgradeProgress) -> Void)?) throws -> Result<VerifyReport, IntegrityFailure> {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let store: EventStore
                do {
                    store = try EventStore(path: path, access: .readOnly, checkingSchema: false)
                } catch StoreError.notAuditDatabase(_, let reason) {
                    return .failure(IntegrityFailure(problems: [IntegrityProblem(seq: nil, reason: "no audit database at \(path): \(reason)")], total: 1))
                }
                return try store.check(progress: progress)
            } catch StoreError.changedWhileRead(_) where attempt < 3 {
                continue
            }
        }
    }

    /// Checks the whole log, in one consistent read:
    ///
    /// - the schema, against the one the engine's migrations make (`SchemaCheck`);
    /// - every event: each column's storage class, UTF-8 without NUL in every text,
    ///   seqs 1, 2, 3 … without gaps, recorded_at never going back, and its hash
    ///   against its stored predecessor's (`ChainCheck`);
    /// - the side tables derived from the events, rebuilt and compared
    ///   (`CorrelationCheck`), the indexes of `events` (`IndexCheck`), and the code
    ///   history against its `CodeBuilt` events (`CodeHistoryCheck`);
    /// - every field of the chain head record against the last event.
    ///
    /// Detects any row changed, removed, inserted or reordered by editing the database
    /// file directly, and events removed from the end. It does not detect a rewrite
    /// that recomputes every later hash and the head too: for that, compare the head
    /// with one recorded outside the database (an export manifest, a published value).
    ///
    /// - Complexity: reads every event once.
    /// - Throws: `IntegrityFailure` naming every problem of the schema and the file and
    ///   the first 20 bad seqs, with the count of all; `StoreError` only when the
    ///   machine failed (I/O, memory, a lock).
    public func verify(progress: (@Sendable (UpgradeProgress) -> Void)? = nil) throws -> VerifyReport {
        try check(progress: progress).get()
    }

    /// As `verify(progress:)`, with the damage found returned, not thrown.
    func check(progress: (@Sendable (UpgradeProgress) -> Void)?) throws -> Result<VerifyReport, IntegrityFailure> {
        do {
            return try readTransaction { db in
                try Verification(db: db, applied: appliedMigrations, progress: progress).run()
            }
        } catch StoreError.sqlite(let failure) where !failure.isMachineFailure {
            return .failure(IntegrityFailure(
                problems: [IntegrityProblem(seq: nil, reason: "the database file is damaged: SQLite reports \"\(failure.message)\"")],
                total: 1))
        }
    }
}

extension EventStore {
    /// `verify`'s checks of what a comparison with the log reads: the schema
    /// (`SchemaCheck`), and each stored event from seq `first` through `last`
    /// (`ChainCheck`: storage classes, UTF-8 without NUL, no gaps, recorded_at, and
    /// each hash against its stored predecessor's, the one before `first` included).
    /// `verify-export --db` runs it over an export's seqs, so that a value changed to
    /// another storage class (which a filter such as `type = ?` passes over, and which a
    /// read coerces back to the same text) is a mismatch, not a match.
    ///
    /// The side tables and indexes are `verify`'s alone: they are not what is compared.
    /// - Complexity: reads the events in the range once.
    func checkStored(from first: Int64, through last: Int64) throws -> IntegrityFindings {
        do {
            return try readTransaction { db in
                let start = max(1, first)
                var previous: ChainHead?
                if start > 1 {
                    let row = try SQLStatement(db, "SELECT seq, hash, recorded_at FROM events WHERE seq = ?")
                    row.bind(1, start - 1)
                    if try row.step() { previous = ChainHead(seq: row.int64(0), hash: [UInt8](row.blob(1)), recordedAt: [UInt8](row.text(2))) }
                }
                var check = ChainCheck(from: start, after: previous)
                try Verification.reading("the schema", &check) { check in
                    for problem in try SchemaCheck.problems(db, applied: appliedMigrations) { check.add(seq: nil, problem) }
                }
                if last >= start {
                    try Verification.reading("the events", &check) { check in
                        let rows = try SQLStatement(db, "SELECT \(ChainCheck.columns) FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq")
                        rows.bind(1, start)
                        rows.bind(2, last)
                        while try rows.step() { check.check(rows) }
                    }
                }
                return check.findings
            }
        } catch StoreError.sqlite(let failure) where !failure.isMachineFailure {
            var findings = IntegrityFindings()
            findings.add(seq: nil, "the database file is damaged: SQLite reports \"\(failure.message)\"")
            return findings
        }
    }
}

/// One run of `verify`, in its read transaction.
private struct Verification {
    let db: Database
    let applied: [String]
    let progress: (@Sendable (UpgradeProgress) -> Void)?

    init(db: Database, applied: [String], progress: (@Sendable (UpgradeProgress) -> Void)?) {
        self.db = db
        self.applied = applied
        self.progress = progress
    }

    func run() throws -> Result<VerifyReport, IntegrityFailure> {
        var check = ChainCheck()
        var eventsRead = false
        try Self.reading("the schema", &check) { check in
            for problem in try SchemaCheck.problems(db, applied: applied) { check.add(seq: nil, problem) }
        }
        try Self.reading("the events", &check) { check in
            let total = try SQLStatement(db, "SELECT max(seq) FROM events")
            let last = try total.step() ? total.int64(0) : 0
            let rows = try SQLStatement(db, "SELECT \(ChainCheck.columns) FROM events ORDER BY seq")
            var correlations = applied.contains("v2-read-indexes") ? CorrelationCheck(try SQLStatement(db, CorrelationCheck.sql)) : nil
            progress?(UpgradeProgress(step: "verifying the log", done: 0, total: last))
            while try rows.step() {
                check.check(rows)
                try correlations?.check(seq: rows.int64(0), meta: rows.text(8), into: &check)
                if let progress, check.rows % 100_000 == 0 {
                    progress(UpgradeProgress(step: "verifying the log", done: check.rows, total: last))
                }
            }
            try correlations?.finish(into: &check)
            progress?(UpgradeProgress(step: "verifying the log", done: check.rows, total: last))
            eventsRead = true
        }
        // The indexes are compared with every row: only when all of them were read.
        if eventsRead { try Self.reading("the indexes of events", &check) { check in
            let names = try SQLStatement(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
            var present: Set<String> = []
            while try names.step() { present.insert(names.string(0)) }
            try check.checkIndexes(db, present: present)
        } }
        // The code history's tables against the CodeBuilt events, once those were read.
        if eventsRead { try Self.reading("the code history", &check) { check in try CodeHistoryCheck.check(db, into: &check) } }
        try Self.reading("the chain head", &check) { check in
            try check.checkHead(SQLStatement(db, "SELECT singleton, seq, hash, recorded_at FROM chain_head"))
        }
        if !check.findings.isEmpty { return .failure(check.findings.failure) }
        let findings = check.findings
        return .success(VerifyReport(
            events: check.rows, head: Hex.encode(check.last.hash), olderBuildSeqs: findings.olderBuildSeqs,
            olderBuildCount: findings.olderBuildCount, olderBuildNotes: findings.olderBuildNotes))
    }

    /// Runs one part of the check. SQLite failing on the file's content (damage, an
    /// altered schema) is a problem found, after which the other parts still run; a
    /// failure of the machine is thrown.
    fileprivate static func reading(_ what: String, _ check: inout ChainCheck, _ body: (inout ChainCheck) throws -> Void) throws {
        do {
            try body(&check)
        } catch StoreError.sqlite(let failure) where !failure.isMachineFailure {
            let place = check.rows > 0 ? " (after seq \(check.last.seq))" : ""
            let cause = failure.isDamage ? "the database file is damaged" : "the schema was altered"
            check.add(seq: nil, "\(cause): SQLite reports \"\(failure.message)\" reading \(what)\(place)")
        }
    }
}
