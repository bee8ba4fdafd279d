import Foundation
import Testing

@testable import AuditEngine

/// A clock tests move by hand; `sleep` jumps to the time asked for.
final class FakeClock: SchedulerClock, @unchecked Sendable {
    // @unchecked: only the test's own thread touches `time` (the scheduler runs on it).
    var time: Timestamp
    var sleeps: [Timestamp] = []
    init(_ time: String) { self.time = try! Timestamp(rfc3339: time) }
    func now() -> Timestamp { time }
    func sleep(until time: Timestamp) {
        sleeps.append(time)
        self.time = time
    }
    func set(_ text: String) { time = try! Timestamp(rfc3339: text) }
}

@Suite("Scheduled exports")
struct ExportSchedulerTests {
    func workspace(_ dir: TempDir, _ toml: String) throws -> ScheduleConfig {
        try toml.write(toFile: dir.file("audit.toml"), atomically: true, encoding: .utf8)
        return try ScheduleConfig.load(file: dir.file("audit.toml"))
    }

    static let hourly = """
        [exports.trail]
        what = "events"
        incremental = true
        destination = "exports/trail"
        schedule = "0 * * * *"
        """

    @Test("the workspace file is read with paths relative to it, and its mistakes are named")
    func config() throws {
        let dir = TempDir()
        let config = try workspace(dir, Self.hourly + "\nretention = 3\nformat = \"csv\"\ntimezone = \"Europe/Berlin\"\n")
        let e = try #require(config.exports.first)
        #expect(e.name == "trail" && e.incremental && e.format == .csv && e.retention == .runs(3))
        #expect(e.destination == dir.file("exports/trail") && e.schedule.timeZoneName == "Europe/Berlin")
        let bad: [(String, String)] = [
            ("[exports.a]\nwhat = \"events\"\ndestination = \"x\"\nschedule = \"0 2 * *\"\n", "[exports.a]: schedule \"0 2 * *\": a schedule has 5 fields"),
            ("[exports.a]\nwhat = \"tables\"\ndestination = \"x\"\nschedule = \"@daily\"\n", "\"what\" must be \"events\" or \"query:NAME\""),
            ("[exports.a]\nwhat = \"events\"\ndestination = \"x\"\nschedule = \"@daily\"\nretension = 3\n", "unknown key \"retension\""),
            ("[exports.a]\nwhat = \"query:q\"\nincremental = true\ndestination = \"x\"\nschedule = \"@daily\"\n", "cannot be incremental"),
            ("[exports.a\nwhat = 1\n", "audit.toml:1:"),
            ("[exports.a]\nwhat = \"query:../../x\"\ndestination = \"x\"\nschedule = \"@daily\"\n", "[exports.a]: \"what\": invalid saved query name \"../../x\""),
            ("[exports.a]\nwhat = \"query:sub/q\"\ndestination = \"x\"\nschedule = \"@daily\"\n", "invalid saved query name \"sub/q\""),
            ("[exports.a]\nwhat = \"query:.hidden\"\ndestination = \"x\"\nschedule = \"@daily\"\n", "invalid saved query name \".hidden\""),
        ]
        for (text, message) in bad {
            #expect { try workspace(dir, text) } throws: { error in
                (error as? ScheduleConfigError).map { $0.description.contains(message) && $0.category == .invalidInput } == true
            }
        }
    }

    @Test("missed slots are caught up once, for the latest one, then the export waits for its next slot")
    func catchUp() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 5)
        let clock = FakeClock("2024-06-30T10:20:00Z")
        let scheduler = ExportScheduler(store: store, config: try workspace(dir, Self.hourly), clock: clock)
        // Never run: due at once for its latest slot.
        var outcomes = try scheduler.runDue()
        #expect(outcomes.map(\.slot.description) == ["2024-06-30T10:00:00.000Z"])
        #expect(try scheduler.runDue().isEmpty)
        #expect(try scheduler.status()[0].nextSlot?.description == "2024-06-30T11:00:00.000Z")
        // Down for five slots: one run, for 15:00.
        clock.set("2024-06-30T15:42:00Z")
        outcomes = try scheduler.runDue()
        #expect(outcomes.map(\.slot.description) == ["2024-06-30T15:00:00.000Z"])
        #expect(try scheduler.runDue().isEmpty)
        let runs = try store.exportRuns(name: "trail")
        #expect(runs.map(\.status) == [.completed, .completed] && runs.map(\.run) == [1, 2])
        #expect(runs[1].fromSeq == runs[0].toSeq + 1)
        let status = try scheduler.status()[0]
        #expect(status.lastSlot?.description == "2024-06-30T15:00:00.000Z" && status.dueSlot == nil && status.lastStatus == "completed")
        // The last run is durable: a new scheduler (a restarted process) agrees.
        let restarted = ExportScheduler(store: try EventStore(path: store.path), config: scheduler.config, clock: clock)
        #expect(try restarted.runDue().isEmpty)
    }

    @Test("the long-lived loop sleeps until each next slot and runs each slot once")
    func loop() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let clock = FakeClock("2024-06-30T10:00:00Z")
        let scheduler = ExportScheduler(store: store, config: try workspace(dir, Self.hourly), clock: clock)
        var slots: [String] = []
        try scheduler.runForever(shouldStop: { clock.sleeps.count >= 3 }) { slots.append($0.slot.description) }
        #expect(slots == ["2024-06-30T10:00:00.000Z", "2024-06-30T11:00:00.000Z", "2024-06-30T12:00:00.000Z"])
        #expect(clock.sleeps.map(\.description) == ["2024-06-30T11:00:00.000Z", "2024-06-30T12:00:00.000Z", "2024-06-30T13:00:00.000Z"])
        let verified = try store.exportRuns(name: "trail").map { try ExportVerifier.verify(directory: $0.directory, trust: .embeddedKey, allowUnsigned: true, store: store) }
        #expect(ExportChain.problems(verified) == [])
    }

    @Test("a run that finds its export already running is skipped and reported, and nothing is recorded for it")
    func lockedRun() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let scheduler = ExportScheduler(store: store, config: try workspace(dir, Self.hourly), clock: FakeClock("2024-06-30T10:20:00Z"))
        do {
            let held = try DatabaseLock.attempt(databasePath: store.path, name: "export-trail")
            let outcome = try #require(try scheduler.runDue().first)
            guard case .failure(let error) = outcome.result else { Issue.record("ran while locked"); return }
            #expect(error.message.contains("already running"))
            #expect(try store.exportRuns(name: "trail").isEmpty)
            withExtendedLifetime(held) {}
        }
        #expect(try scheduler.runDue().count == 1)
    }

    @Test("a run that cannot start is recorded as failed for its slot, in the log too, and retried only after its backoff")
    func failedRun() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let config = try workspace(dir, """
            [exports.report]
            what = "query:missing"
            destination = "exports/report"
            schedule = "0 * * * *"
            """)
        let scheduler = ExportScheduler(store: store, config: config, clock: FakeClock("2024-06-30T10:20:00Z"))
        let outcome = try #require(try scheduler.runDue().first)
        guard case .failure(let error) = outcome.result else { Issue.record("a missing query ran"); return }
        #expect(error.message.contains("no such saved query"))
        // Recorded for its slot, in the table and in the log, and not retried before its backoff.
        let runs = try store.exportRuns(name: "report")
        #expect(runs.map(\.status) == [.failed] && runs[0].scheduledFor == outcome.slot)
        #expect(try store.events(EventFilter(stream: "audit-export-report", type: "ExportFailed")).count == 1)
        #expect(try scheduler.runDue().isEmpty)
        let status = try scheduler.status()[0]
        #expect(status.lastStatus == "failed" && status.lastError?.contains("no such saved query") == true && status.attempts == 1)
        #expect(status.dueSlot == outcome.slot && status.retryAt?.description == "2024-06-30T10:21:00.000Z")
    }

    @Test("retention keeps the newest runs")
    func retention() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        let clock = FakeClock("2024-06-30T10:00:00Z")
        let scheduler = ExportScheduler(store: store, config: try workspace(dir, Self.hourly + "\nretention = 2\n"), clock: clock)
        try scheduler.runForever(shouldStop: { clock.sleeps.count >= 4 }) { _ in }
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir.file("exports/trail")).sorted()
        #expect(kept == ["trail-000003", "trail-000004"])
        #expect(try store.exportRuns(name: "trail").count == 4)
        // Each removal is recorded in the log, naming the run and why.
        let removed = try store.events(EventFilter(stream: "audit-export-trail", type: "ExportRunRemoved"))
        #expect(removed.map { try! JSONParser.parse($0.data)["run"] } == [.int(1), .int(2)])
        #expect(removed.allSatisfy { $0.data.contains("retention: keep the newest 2 runs") })
    }
}

@Suite("Saved-query names")
struct SavedQueryNameTests {
    @Test("a saved query's name is a name, not a path", arguments: ["../outside", "../../outside", "sub/q", "/etc/passwd", ".hidden", "", "a b", "q\u{0}x"])
    func badNames(name: String) throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("queries"), withIntermediateDirectories: true)
        try "SELECT 1".write(toFile: dir.file("outside.sql"), atomically: true, encoding: .utf8)
        #expect(!SavedQuery.isValidName(name))
        #expect { try SavedQuery.load(name, from: dir.file("queries")) } throws: { error in
            (error as? QueryError).map { $0.message.contains("invalid saved query name") && $0.category == .invalidInput } == true
        }
        // An export of it says the query's name is bad (not the export's, which defaults to it).
        let store = try dir.store()
        #expect { try store.export(ExportRequest(name: "ok", content: .query(QuerySelection(name: name, sql: "SELECT 1")), destination: .directory(dir.file("x")))) } throws: { error in
            (error as? ExportError).map { $0.message.contains("invalid saved query name") && $0.category == .invalidInput } == true
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("x")))
    }

    @Test("good names load", arguments: ["q", "open_orders", "v1.2-final", "A_b-9"])
    func goodNames(name: String) throws {
        let dir = TempDir()
        try "SELECT 1".write(toFile: dir.file(name + ".sql"), atomically: true, encoding: .utf8)
        #expect(try SavedQuery.load(name, from: dir.path) == "SELECT 1")
    }
}
