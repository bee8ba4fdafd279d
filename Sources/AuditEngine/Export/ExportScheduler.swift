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
    /// The slot of its last run (whatever its outcome), and that outcome.
    public var lastSlot: Timestamp?
    public var lastStatus: String?
    public var lastDirectory: String?
    /// The slot it is due for now, if any (the latest slot not yet run).
    public var dueSlot: Timestamp?
    /// The next slot after now.
    public var nextSlot: Timestamp?
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
/// - Each slot is attempted once: a failed run is recorded (and appended to the log)
///   and retried at the next slot, not in a loop.
/// - The same export never runs twice at once: `EventStore.export` takes its lock; a
///   run that finds it held is skipped and reported.
/// - Durable: the last slot of each export is in the database (`export_runs`).
public final class ExportScheduler: Sendable {
    public let store: EventStore
    public let config: ScheduleConfig
    let clock: any SchedulerClock

    public init(store: EventStore, config: ScheduleConfig, clock: any SchedulerClock = SystemClock()) {
        self.store = store
        self.config = config
        self.clock = clock
    }

    /// Every export's last and next runs at the clock's now.
    public func status() throws -> [ScheduleStatus] {
        let now = clock.now()
        return try config.exports.map { e in
            let last = try lastRun(e.name)
            let latest = e.schedule.previous(atOrBefore: now)
            let due = latest.flatMap { slot in (last?.scheduledFor).map { slot > $0 } ?? true ? slot : nil }
            return ScheduleStatus(
                name: e.name, schedule: e.schedule, lastSlot: last?.scheduledFor, lastStatus: last?.status.rawValue,
                lastDirectory: last?.directory, dueSlot: due, nextSlot: e.schedule.next(after: now))
        }
    }

    /// Runs every export that is due now, one after another, and returns what each did.
    public func runDue() throws -> [ScheduledRunOutcome] {
        var outcomes: [ScheduledRunOutcome] = []
        for status in try status() {
            guard let slot = status.dueSlot, let export = config.exports.first(where: { $0.name == status.name }) else { continue }
            outcomes.append(run(export, slot: slot))
        }
        return outcomes
    }

    /// Runs due exports, then sleeps until the next slot, until `shouldStop` says so
    /// (checked after each round). `report` is told each outcome; an error it throws
    /// stops the scheduler.
    public func runForever(shouldStop: () -> Bool = { false }, report: (ScheduledRunOutcome) throws -> Void) throws {
        var attempted: [String: Timestamp] = [:]
        while !shouldStop() {
            for status in try status() {
                guard let slot = status.dueSlot, attempted[status.name] != slot,
                      let export = config.exports.first(where: { $0.name == status.name })
                else { continue }
                attempted[status.name] = slot
                try report(run(export, slot: slot))
            }
            if shouldStop() { return }
            let now = clock.now()
            let next = config.exports.compactMap { $0.schedule.next(after: now) }.min() ?? Timestamp(milliseconds: now.milliseconds + 3_600_000)
            clock.sleep(until: next)
        }
    }

    /// Runs one export for `slot`, then applies its retention.
    public func run(_ export: ScheduledExport, slot: Timestamp) -> ScheduledRunOutcome {
        do {
            let content: ExportContent
            switch export.what {
            case .events(let selection): content = .events(selection)
            case .query(let name, let parameters):
                let sql: String
                do {
                    sql = try SavedQuery.load(name, from: config.queriesDirectory)
                } catch let error as QueryError {
                    throw ExportError("\(error) (export \(export.name) names query:\(name))", category: .invalidInput)
                }
                content = .query(QuerySelection(name: name, sql: sql, parameters: parameters))
            }
            var request = ExportRequest(
                name: export.name, content: content, format: export.format, destination: .folder(export.destination),
                incremental: export.incremental, signingKey: try export.signingKey.map(SigningKey.load))
            request.scheduledFor = slot
            let result = try store.export(request)
            if let retention = export.retention { applyRetention(retention, export: export, keep: result.directory) }
            return ScheduledRunOutcome(name: export.name, slot: slot, result: .success(result))
        } catch {
            let failure = error as? ExportError
                ?? ExportError("\(error)", category: (error as? any AuditFailure)?.category ?? .failure)
            // A run that started has recorded its own failure; one that could not start
            // is recorded here, so that the slot counts as attempted and the log has it.
            // A run skipped because another holds the lock is not a failure of this slot.
            if !failure.isAlreadyRunning, (try? lastRun(export.name))??.scheduledFor != slot {
                try? store.recordExportFailure(name: export.name, slot: slot, error: failure.message)
            }
            return ScheduledRunOutcome(name: export.name, slot: slot, result: .failure(failure))
        }
    }

    private func lastRun(_ name: String) throws -> ExportRunRecord? {
        try store.readTransaction { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM export_runs WHERE name = ? AND scheduled_for IS NOT NULL ORDER BY scheduled_for DESC, id DESC LIMIT 1",
                arguments: [name]
            ).map(ExportRuns.record)
        }
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
