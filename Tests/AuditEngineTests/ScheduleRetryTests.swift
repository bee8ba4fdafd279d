import Foundation
import Testing

@testable import AuditEngine

@Suite("Retrying failed slots")
struct ScheduleRetryTests {
    func scheduler(_ dir: TempDir, _ store: EventStore, at time: String, schedule: String = "0 * * * *", query: String = "report")
        throws -> (ExportScheduler, FakeClock)
    {
        try """
            [exports.report]
            what = "query:\(query)"
            destination = "exports/report"
            schedule = "\(schedule)"
            """.write(toFile: dir.file("audit.toml"), atomically: true, encoding: .utf8)
        let clock = FakeClock(time)
        return (ExportScheduler(store: store, config: try ScheduleConfig.load(file: dir.file("audit.toml")), clock: clock), clock)
    }

    func writeQuery(_ dir: TempDir, _ sql: String = "SELECT count(*) AS n FROM events") throws {
        try FileManager.default.createDirectory(atPath: dir.file("queries"), withIntermediateDirectories: true)
        try sql.write(toFile: dir.file("queries/report.sql"), atomically: true, encoding: .utf8)
    }

    func failed(_ outcomes: [ScheduledRunOutcome]) -> [String] {
        outcomes.compactMap { if case .failure = $0.result { return $0.slot.description } else { return nil } }
    }

    @Test("a failing slot is tried 1, 5 and 15 minutes after each failure, and not when the retry would reach the next slot")
    func backoffWithinTheSlot() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T10:20:00Z")
        var attempts: [String] = []
        for time in ["10:20:00", "10:20:59", "10:21:00", "10:25:59", "10:26:00", "10:40:00", "10:41:00", "10:59:59"] {
            clock.set("2024-06-30T\(time)Z")
            if !failed(try scheduler.runDue()).isEmpty { attempts.append(time) }
        }
        #expect(attempts == ["10:20:00", "10:21:00", "10:26:00", "10:41:00"])
        // The fifth attempt would be at 11:41, after the next slot: none is left for 10:00.
        let status = try scheduler.status()[0]
        #expect(status.attempts == 4 && status.lastStatus == "failed" && status.dueSlot == nil && status.retryAt == nil)
        // Every attempt is in export_runs and in the log, for its slot.
        #expect(try store.exportRuns(name: "report").map { $0.scheduledFor?.description } == Array(repeating: "2024-06-30T10:00:00.000Z", count: 4))
        #expect(try store.events(EventFilter(stream: "audit-export-report", type: "ExportFailed")).count == 4)
        // The next slot starts afresh.
        clock.set("2024-06-30T11:00:00Z")
        #expect(failed(try scheduler.runDue()) == ["2024-06-30T11:00:00.000Z"])
        #expect(try scheduler.status()[0].attempts == 1)
    }

    @Test("a daily slot gets at most five attempts, the last 60 minutes after the fourth")
    func boundedAttempts() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T02:00:00Z", schedule: "0 2 * * *")
        var attempts: [String] = []
        var minute = 0
        while minute <= 6 * 60 {
            clock.set(Timestamp(milliseconds: try Timestamp(rfc3339: "2024-06-30T02:00:00Z").milliseconds + Int64(minute) * 60_000).description)
            if !failed(try scheduler.runDue()).isEmpty { attempts.append(String(clock.now().description.dropFirst(11).prefix(5))) }
            minute += 1
        }
        #expect(attempts == ["02:00", "02:01", "02:06", "02:21", "03:21"])
        #expect(RetryPolicy.maxAttempts == attempts.count)
        #expect(try scheduler.status()[0].dueSlot == nil)
    }

    @Test("a retry that succeeds completes the slot, which is then not run again; a restarted scheduler agrees")
    func retrySucceeds() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T10:20:00Z")
        #expect(failed(try scheduler.runDue()).count == 1)
        try writeQuery(dir)
        // Fixed, but the retry waits for its backoff; a new process sees the same.
        let restarted = ExportScheduler(store: try EventStore(path: store.path), config: scheduler.config, clock: clock)
        #expect(try restarted.runDue().isEmpty)
        clock.set("2024-06-30T10:21:00Z")
        let outcome = try #require(try restarted.runDue().first)
        guard case .success(let result) = outcome.result else { Issue.record("the retry failed: \(outcome.result)"); return }
        #expect(outcome.slot.description == "2024-06-30T10:00:00.000Z" && result.manifest.rows == 1)
        let status = try scheduler.status()[0]
        #expect(status.lastStatus == "completed" && status.attempts == 2 && status.dueSlot == nil && status.lastDirectory == result.directory)
        clock.set("2024-06-30T10:59:00Z")
        #expect(try scheduler.runDue().isEmpty)
        #expect(try store.exportRuns(name: "report").map(\.status) == [.failed, .completed])
    }

    @Test("retryFailed tries a failed slot at once, before its backoff and after its attempts are used up, but not an earlier slot")
    func retryFailedNow() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T10:20:00Z", schedule: "*/5 * * * *")
        #expect(failed(try scheduler.runDue()).count == 1)  // slot 10:20
        clock.set("2024-06-30T10:21:00Z")
        #expect(failed(try scheduler.runDue()).count == 1)  // its one retry: the next would be at 10:26
        #expect(try scheduler.status()[0].dueSlot == nil)
        #expect(failed(try scheduler.runDue(retryFailed: true)).count == 1)
        try writeQuery(dir)
        let outcome = try #require(try scheduler.runDue(retryFailed: true).first)
        #expect(outcome.slot.description == "2024-06-30T10:20:00.000Z")
        if case .failure(let error) = outcome.result { Issue.record("\(error)") }
        #expect(try scheduler.runDue(retryFailed: true).isEmpty)  // completed: nothing to retry
        // A failed slot that is no longer the latest is not retried: its successor runs.
        try FileManager.default.removeItem(atPath: dir.file("queries/report.sql"))
        clock.set("2024-06-30T10:25:00Z")
        #expect(failed(try scheduler.runDue()) == ["2024-06-30T10:25:00.000Z"])
        clock.set("2024-06-30T10:30:10Z")
        try writeQuery(dir)
        #expect(try scheduler.runDue(retryFailed: true).map(\.slot.description) == ["2024-06-30T10:30:00.000Z"])
    }

    @Test("a run that fails after it started is recorded once, by the export itself")
    func failureInsideTheRun() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        try writeQuery(dir, "SELECT * FROM no_such_projection")
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T10:20:00Z")
        #expect(failed(try scheduler.runDue()).count == 1)
        clock.set("2024-06-30T10:21:00Z")
        #expect(failed(try scheduler.runDue()).count == 1)
        let runs = try store.exportRuns(name: "report")
        #expect(runs.count == 2 && runs.allSatisfy { $0.status == .failed && $0.error?.contains("no_such_projection") == true })
        #expect(try store.events(EventFilter(stream: "audit-export-report", type: "ExportFailed")).count == 2)
        #expect(try scheduler.status()[0].attempts == 2)
    }

    @Test("the long-lived loop sleeps until each retry, then until the next slot")
    func loopRetries() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let (scheduler, clock) = try scheduler(dir, store, at: "2024-06-30T10:20:00Z")
        var slots: [String] = []
        try scheduler.runForever(shouldStop: { clock.sleeps.count >= 5 }) { slots.append($0.slot.description) }
        #expect(clock.sleeps.map { String($0.description.dropFirst(11).prefix(5)) } == ["10:21", "10:26", "10:41", "11:00", "11:01"])
        #expect(slots.map { String($0.dropFirst(11).prefix(5)) } == ["10:00", "10:00", "10:00", "10:00", "11:00"])
    }
}
