import Foundation
import GRDB

/// The scheduler's time: the wall clock in production, a fake one in tests.
public protocol SchedulerClock: Sendable {
    func now() -> Timestamp
    /// Waits until `time` (or returns early; the scheduler checks the time again).
    func sleep(until time: Timestamp)
}

/// The real clock.
public struct SystemClock: SchedulerClock {
    public init() {}
    public func now() -> Timestamp { .now() }
    public func sleep(until time: Timestamp) {
        let ms = time.milliseconds - Timestamp.now().milliseconds
        // At most a minute at a time, so that a clock change is noticed.
        if ms > 0 { usleep(UInt32(min(ms, 60_000)) * 1000) }
    }
}

/// Where one scheduled export stands.
public struct ScheduleStatus: Sendable, Equatable {
    public var name: String
    public var schedule: CronSchedule
    /// The slot of its last run (whatever its outcome), that outcome, and its error.
    public var lastSlot: Timestamp?
    public var lastStatus: String?
    public var lastError: String?
    /// How many times the scheduler has tried `lastSlot` (0 when it has no record of it).
    public var attempts: Int
    /// The directory of the last run, when it completed (a failed run has none).
    public var lastDirectory: String?
    /// The slot still to be run: the latest slot when it has not run, or when it failed
    /// and has a retry left before the next slot. It runs now unless `retryAt` is later.
    public var dueSlot: Timestamp?
    /// When the failed `dueSlot` is tried again (nil: it has not been tried, and runs at once).
    public var retryAt: Timestamp?
    /// The next slot after now.
    public var nextSlot: Timestamp?

    /// Whether `dueSlot` runs at `now`.
    package func isDue(at now: Timestamp) -> Bool { dueSlot != nil && (retryAt ?? now) <= now }
}

/// What one scheduled run did.
public struct ScheduledRunOutcome: Sendable {
    public var name: String
    public var slot: Timestamp
    public var result: Result<ExportResult, ExportError>
}

/// Runs the exports of a workspace file on their schedules.
///
/// - Catch-up: an export is due when its latest slot at or before now has not run;
///   after downtime that is one run, for the latest missed slot, not one per slot.
///   An export that has never run is due at once, for its latest slot.
/// - Retries: a failed slot is tried again with backoff (`RetryPolicy`: at most 5
///   attempts, 1, 5, 15 and 60 minutes after each failure), while it is the latest
///   slot. Every attempt is recorded (`export_runs`, `audit_schedule_attempts`) and a
///   failed one is appended to the log (`ExportFailed`).
/// - The same export never runs twice at once: `EventStore.export` takes its lock; a
///   run that finds it held is skipped and reported, and is not an attempt.
/// - Durable: the attempts of each slot are in the database, so a restarted
///   scheduler (or the next `schedule run --once`) carries on where the last stopped.
public final class ExportScheduler: Sendable {
    public let store: EventStore
    public let config: ScheduleConfig
    let clock: any SchedulerClock

    public init(store: EventStore, config: ScheduleConfig, clock: any SchedulerClock = SystemClock()) {
        self.store = store
        self.config = config
        self.clock = clock
    }

    /// Every export's last, due and next runs at the clock's now.
    public func status() throws -> [ScheduleStatus] {
        let now = clock.now()
        return try config.exports.map { e in try status(e, now: now) }
    }

    private func status(_ e: ScheduledExport, now: Timestamp) throws -> ScheduleStatus {
        let latest = e.schedule.previous(atOrBefore: now)
        return try store.readTransaction { db in
            let last = try Row.fetchOne(
                db, sql: "SELECT * FROM export_runs WHERE name = ? AND scheduled_for IS NOT NULL ORDER BY scheduled_for DESC, id DESC LIMIT 1",
                arguments: [e.name]
            ).map(ExportRuns.record)
            var status = ScheduleStatus(
                name: e.name, schedule: e.schedule, lastSlot: last?.scheduledFor, lastStatus: last?.status.rawValue, lastError: last?.error,
                attempts: 0, lastDirectory: last?.status == .completed ? last?.directory : nil, nextSlot: e.schedule.next(after: now))
            if let slot = last?.scheduledFor { status.attempts = try ScheduleAttempts.of(db, name: e.name, slot: slot).count }
            // A slot later than the latest (the clock was set back) is not run again.
            guard let latest, (last?.scheduledFor).map({ $0 <= latest }) ?? true else { return status }
            let attempts = try ScheduleAttempts.of(db, name: e.name, slot: latest)
            let completed = try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM export_runs WHERE name = ? AND scheduled_for = ? AND status = 'completed')",
                arguments: [e.name, latest.description])!
            if completed || attempts.contains(where: { $0.outcome == .completed }) { return status }
            guard let lastFailure = attempts.last else {
                status.dueSlot = latest
                return status
            }
            if let retry = RetryPolicy.retry(after: attempts.count, lastFailure: lastFailure.finishedAt),
               e.schedule.next(after: latest).map({ retry < $0 }) ?? true {
                status.dueSlot = latest
                status.retryAt = retry
            }
            return status
        }
    }

    /// Runs every export that is due now, one after another, and returns what each did.
    /// With `retryFailed`, a slot whose last attempt failed is tried again at once, before
    /// its backoff and after its attempts are used up, as long as it is the latest slot.
    public func runDue(retryFailed: Bool = false) throws -> [ScheduledRunOutcome] {
        let now = clock.now()
        var outcomes: [ScheduledRunOutcome] = []
        for (export, status) in zip(config.exports, try status()) {
            if status.isDue(at: now), let slot = status.dueSlot {
                outcomes.append(run(export, slot: slot))
            } else if retryFailed, status.lastStatus == ExportRunRecord.Status.failed.rawValue, let slot = status.lastSlot,
                      slot == export.schedule.previous(atOrBefore: now) {
                outcomes.append(run(export, slot: slot))
            }
        }
        return outcomes
    }

    /// Runs due exports, then sleeps until the next slot or retry, until `shouldStop`
    /// says so (checked after each round). `report` is told each outcome; an error it
    /// throws stops the scheduler.
    public func runForever(shouldStop: () -> Bool = { false }, report: (ScheduledRunOutcome) throws -> Void) throws {
        // An export found running elsewhere is looked at again a minute later.
        var busyUntil: [String: Timestamp] = [:]
        while !shouldStop() {
            let now = clock.now()
            for (export, status) in zip(config.exports, try status()) {
                guard status.isDue(at: now), let slot = status.dueSlot, busyUntil[export.name].map({ $0 <= now }) ?? true else { continue }
                let outcome = run(export, slot: slot)
                if case .failure(let error) = outcome.result, error.isAlreadyRunning {
                    busyUntil[export.name] = Timestamp(milliseconds: clock.now().milliseconds + 60_000)
                }
                try report(outcome)
            }
            if shouldStop() { return }
            let after = clock.now()
            let wakes = try status().flatMap { s in [s.nextSlot, s.retryAt, busyUntil[s.name]] }.compactMap { $0 }.filter { $0 > after }
            clock.sleep(until: wakes.min() ?? Timestamp(milliseconds: after.milliseconds + 3_600_000))
        }
    }

    /// Runs one export for `slot`, then applies its retention.
    /// Every attempt is recorded for its slot; a run skipped because the export is
    /// already running is not an attempt.
    public func run(_ export: ScheduledExport, slot: Timestamp) -> ScheduledRunOutcome {
        let runsBefore = try? lastRunID(export.name)
        do {
            let content: ExportContent
            switch export.what {
            case .events(let selection): content = .events(selection)
            case .query(let name, let parameters):
                var selection = QuerySelection(name: name, sql: try savedQuery(name, export: export), parameters: parameters)
                // A scheduled report is current too: its lag, a wait or a stale answer is logged.
                selection.current.note = { [logger = store.logger] in logger.warning("export \(export.name): \($0)") }
                content = .query(selection)
            }
            var request = ExportRequest(
                name: export.name, content: content, format: export.format, destination: .folder(export.destination),
                incremental: export.incremental, signingKey: try export.signingKey.map(SigningKey.load))
            request.scheduledFor = slot
            let result = try store.export(request)
            if let retention = export.retention { applyRetention(retention, export: export, keep: result.directory) }
            recordAttempt(export, slot: slot, .completed)
            return ScheduledRunOutcome(name: export.name, slot: slot, result: .success(result))
        } catch {
            let failure = error as? ExportError
                ?? ExportError("\(error)", category: (error as? any AuditFailure)?.category ?? .failure)
            // A run that started has recorded its own failure; one that could not start
            // is recorded here, so that `export_runs` and the log have every attempt.
            // A run skipped because another holds the lock is not an attempt of this slot.
            if !failure.isAlreadyRunning {
                if (try? lastRunID(export.name)) == runsBefore {
                    try? store.recordExportFailure(name: export.name, slot: slot, error: failure.message)
                }
                recordAttempt(export, slot: slot, .failed)
            }
            return ScheduledRunOutcome(name: export.name, slot: slot, result: .failure(failure))
        }
    }

    /// The SQL of saved query `name`, read when the export runs.
    func savedQuery(_ name: String, export: ScheduledExport) throws -> String {
        do {
            return try SavedQuery.load(name, from: config.queriesDirectory)
        } catch let error as QueryError {
            throw ExportError("\(error) (export \(export.name) names query:\(name))", category: .invalidInput)
        }
    }

    private func recordAttempt(_ export: ScheduledExport, slot: Timestamp, _ outcome: ScheduleAttempt.Outcome) {
        // The run itself is recorded already; a lost attempt row costs one extra retry.
        try? store.writeTransaction { db in
            try ScheduleAttempts.record(db, name: export.name, slot: slot, outcome: outcome, at: clock.now())
        }
    }

    private func lastRunID(_ name: String) throws -> Int64? {
        try store.readTransaction { db in try Int64.fetchOne(db, sql: "SELECT max(id) FROM export_runs WHERE name = ?", arguments: [name]) }
    }

    /// Removes the run directories of `export` that retention no longer keeps (never
    /// `keep`, the run just made), each recorded in the log as removed first
    /// (`removeExportRun`). The log and `export_runs` keep the record of every run.
    func applyRetention(_ retention: ScheduledExport.Retention, export: ScheduledExport, keep: String) {
        let prefix = export.name + "-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: export.destination) else { return }
        let runs = entries.filter { $0.hasPrefix(prefix) && $0.count == prefix.count + 6 && Int($0.dropFirst(prefix.count)) != nil }.sorted()
        var remove: [String] = []
        switch retention {
        case .runs(let n): remove = Array(runs.dropLast(n))
        case .days(let days):
            let cutoff = clock.now().milliseconds - Int64(days) * 86_400_000
            remove = runs.filter { run in
                guard let data = FileManager.default.contents(atPath: export.destination + "/" + run + "/manifest.json"),
                      let manifest = try? ExportManifest(json: [UInt8](data), source: run)
                else { return false }
                return manifest.createdAt.milliseconds < cutoff
            }
        }
        let kept = URL(fileURLWithPath: keep).standardizedFileURL.path
        let reason: String
        switch retention {
        case .runs(let n): reason = "retention: keep the newest \(n) runs"
        case .days(let days): reason = "retention: keep runs made in the last \(days) days"
        }
        for run in remove where URL(fileURLWithPath: export.destination + "/" + run).standardizedFileURL.path != kept {
            do {
                try store.removeExportRun(directory: export.destination + "/" + run, reason: reason)
            } catch {
                store.logger.warning("export \(export.name): \(error)")
            }
        }
    }
}
