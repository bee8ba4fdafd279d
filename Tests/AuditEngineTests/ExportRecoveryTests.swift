import Foundation
import GRDB
import Testing

@testable import AuditEngine

@Suite("Export crash safety and locking")
struct ExportRecoveryTests {
    /// Runs an incremental export whose progress hook stops it part-way, as a crash would
    /// (the partial directory and the `started` row stay; nothing cleans up).
    @Test("an export interrupted while writing leaves no complete-looking directory; the next run cleans up and covers the same events")
    func interruptedWhileWriting() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 40)
        _ = try store.export(eventsExport("trail", dir.file("run1"), incremental: true))  // seq 1…40
        for i in 0..<30 { try store.append(NewEvent(stream: "late", type: "T", data: .object([JSONMember("i", .int(Int64(i)))]))) }
        // Simulate a kill: the row is 'started' and a partial directory holds half a file.
        let partial = dir.file(".run2.partial-dead")
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        try Data("{\"seq\":41".utf8).write(to: URL(fileURLWithPath: partial + "/events-000001.jsonl"))
        try store.writeTransaction { db in
            _ = try ExportRuns.insertStarted(db, ExportRunRecord(
                id: 0, name: "trail", run: 2, status: .started, incremental: true,
                selection: try ExportRuns.lastCompleted(db, name: "trail")!.selection, directory: dir.file("run2"), partial: partial,
                fromSeq: 41, toSeq: 71, rows: nil, manifestSHA256: nil, scheduledFor: nil, startedAt: .now(), finishedAt: nil, error: nil))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("run2")))
        #expect(problems(partial).first?.hasPrefix("no manifest.json") == true)

        let next = try store.export(eventsExport("trail", dir.file("run2b"), incremental: true))
        #expect(!FileManager.default.fileExists(atPath: partial))
        #expect(next.manifest.run == 2 && next.manifest.selection.fromSeq == 41)
        let runs = try store.exportRuns(name: "trail")
        #expect(runs.map(\.status) == [.completed, .failed, .completed])
        #expect(runs[1].error?.hasPrefix("interrupted") == true)
        let failed = try store.events(EventFilter(stream: "audit-export-trail", type: "ExportFailed"))
        #expect(failed.count == 1 && failed[0].data.contains("interrupted"))
    }

    @Test("an export stopped after its directory was complete but before it was recorded is adopted, not repeated")
    func interruptedAfterRename() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 10)
        let first = try store.export(eventsExport("trail", dir.file("run1"), incremental: true))
        // Undo the completion as if the process died between the rename and the commit.
        try store.writeTransaction { db in
            try db.execute(sql: "UPDATE export_runs SET status = 'pending', finished_at = NULL WHERE run = 1")
        }
        let next = try store.export(eventsExport("trail", dir.file("run2"), incremental: true))
        #expect(next.manifest.run == 2 && next.manifest.previous?.manifestSHA256 == first.manifestSHA256)
        #expect(next.manifest.selection.fromSeq == 11)
        let completed = try store.events(EventFilter(stream: "audit-export-trail", type: "ExportCompleted"))
        #expect(completed.count == 3 && completed[1].data.contains(#""recovered":true"#))
    }

    @Test("the same export cannot run twice at once; another export can; the lock is gone when its holder is")
    func lock() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        do {
            let held = try DatabaseLock.attempt(databasePath: store.path, name: "export-trail")
            #expect(held.lock != nil)
            #expect { try store.export(eventsExport("trail", dir.file("a"))) } throws: {
                ($0 as? ExportError)?.message.contains("export trail is already running") == true
            }
            #expect(!FileManager.default.fileExists(atPath: dir.file("a")))
            #expect(try store.exportRuns(name: "trail").isEmpty)
            _ = try store.export(eventsExport("other", dir.file("b")))
            withExtendedLifetime(held) {}
        }
        // Released with its holder (as the kernel releases it when a process dies).
        let retry = try store.export(eventsExport("trail", dir.file("c")))
        #expect(retry.manifest.run == 1)
    }
}
