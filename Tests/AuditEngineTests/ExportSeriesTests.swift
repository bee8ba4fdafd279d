import Foundation
import Testing

@testable import AuditEngine

/// Runs removed, renamed or swapped in a folder of runs are caught: by their names
/// offline, and against the runs the log recorded (and recorded as removed) with --db.
@Suite("Missing and renamed export runs")
struct ExportSeriesTests {
    /// A store and a folder `trail` holding incremental runs 1…`runs` (unsigned).
    struct Fixture {
        let dir = TempDir()
        let store: EventStore
        var folder: String { dir.file("trail") }

        init(runs: Int) throws {
            store = try exportStore(dir, count: 5)
            for _ in 1...runs { try run() }
        }

        @discardableResult
        func run() throws -> ExportResult {
            _ = try store.append(NewEvent(stream: "s", type: "T"))
            var request = eventsExport("trail", "", incremental: true)
            request.destination = .folder(folder)
            return try store.export(request)
        }

        func path(_ run: Int) -> String { folder + "/" + String(format: "trail-%06d", run) }

        /// What verify-export FOLDER [--db] finds: problems, and the notes of the runs.
        func check(withStore: Bool) throws -> (problems: [String], notes: [String]) {
            let entries = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
            var problems: [String] = []
            var runs: [ExportVerification] = []
            for entry in entries {
                do {
                    runs.append(try ExportVerifier.verify(directory: folder + "/" + entry, trust: .embeddedKey, allowUnsigned: true, store: withStore ? store : nil))
                } catch let failure as ExportVerificationFailure {
                    problems += failure.problems
                }
            }
            problems += try ExportSeries.check(&runs, folder: folder, store: withStore ? store : nil)
            problems += ExportChain.problems(runs)
            return (problems, runs.flatMap(\.notes))
        }
    }

    @Test("the names a run directory claims", arguments: [
        ("x/trail-000001", "trail", 1), ("trail-000042", "trail", 42), ("a-b-0000007", "a-b", 7), ("t-1234567", "t", 1234567),
    ] as [(String, String, Int64)])
    func claims(directory: String, name: String, run: Int64) {
        let claim = ExportSeries.claim(directory)
        #expect(claim?.name == name && claim?.run == run)
    }

    @Test("directories not named as runs claim none", arguments: ["payments-2005", "first-100", "trail", "-000001", "trail-00000a", "trail-"])
    func noClaim(directory: String) {
        #expect(ExportSeries.claim(directory) == nil)
    }

    @Test("an untouched folder verifies, offline and against the log")
    func untouched() throws {
        let f = try Fixture(runs: 3)
        #expect(try f.check(withStore: false).problems == [])
        #expect(try f.check(withStore: true).problems == [])
    }

    @Test("the newest run removed: with the database, the recorded run is missing")
    func newestRemoved() throws {
        let f = try Fixture(runs: 3)
        try FileManager.default.removeItem(atPath: f.path(3))
        #expect(try f.check(withStore: false).problems == [])  // nothing offline can show it
        let found = try f.check(withStore: true).problems
        #expect(found.count == 1 && found[0].hasPrefix("export trail, run 3: the log recorded it (ExportCompleted at seq ") && found[0].contains("and no removal of it"), "\(found)")
    }

    @Test("the first run removed: offline a note says the series starts at run 2; with the database it is missing")
    func firstRemoved() throws {
        let f = try Fixture(runs: 3)
        try FileManager.default.removeItem(atPath: f.path(1))
        let offline = try f.check(withStore: false)
        #expect(offline.problems == [])
        #expect(offline.notes.contains { $0.contains("export trail starts at run 2") && $0.contains("run 1 is not here") }, "\(offline.notes)")
        let found = try f.check(withStore: true).problems
        #expect(found.contains { $0.hasPrefix("export trail, run 1: the log recorded it") }, "\(found)")
    }

    @Test("runs removed by retention are recorded in the log and accepted with the database")
    func retention() throws {
        let f = try Fixture(runs: 4)
        for run in 1...2 { try f.store.removeExportRun(directory: f.path(run), reason: "retention: test") }
        #expect(!FileManager.default.fileExists(atPath: f.path(1)))
        let removed = try f.store.events(EventFilter(stream: "audit-export-trail", type: "ExportRunRemoved"))
        #expect(removed.count == 2 && removed[0].data.contains(#""reason":"retention: test""#) && removed[0].data.contains(#""run":1"#))
        let checked = try f.check(withStore: true)
        #expect(checked.problems == [], "\(checked.problems)")
        #expect(checked.notes.contains { $0.contains("2 run(s) recorded as removed by retention are not here (runs 1, 2)") })
        // A later run removed by hand, not by retention, is still caught.
        try FileManager.default.removeItem(atPath: f.path(4))
        #expect(try f.check(withStore: true).problems.contains { $0.hasPrefix("export trail, run 4: the log recorded it") })
    }

    @Test("swapped run directories: each name says another run than its manifest")
    func swapped() throws {
        let f = try Fixture(runs: 2)
        try FileManager.default.moveItem(atPath: f.path(1), toPath: f.folder + "/tmp")
        try FileManager.default.moveItem(atPath: f.path(2), toPath: f.path(1))
        try FileManager.default.moveItem(atPath: f.folder + "/tmp", toPath: f.path(2))
        for withStore in [false, true] {
            let found = try f.check(withStore: withStore).problems
            #expect(found.contains("the directory's name says export trail, run 1, but its manifest is export trail, run 2: run directories were renamed or swapped"), "\(found)")
            #expect(found.contains("the directory's name says export trail, run 2, but its manifest is export trail, run 1: run directories were renamed or swapped"), "\(found)")
        }
    }

    @Test("a run renamed to another run's name (trail-000007)")
    func renamed() throws {
        let f = try Fixture(runs: 3)
        try FileManager.default.moveItem(atPath: f.path(3), toPath: f.path(7))
        let found = try f.check(withStore: false).problems
        #expect(found.contains("the directory's name says export trail, run 7, but its manifest is export trail, run 3: run directories were renamed or swapped"), "\(found)")
    }

    @Test("the newest run's manifest replaced consistently (unsigned): the log's recorded manifest hash differs")
    func replacedNewest() throws {
        let f = try Fixture(runs: 2)
        let file = f.path(2) + "/manifest.json"
        var manifest = try ExportManifest(json: [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))), source: "m")
        manifest.createdAt = Timestamp(milliseconds: manifest.createdAt.milliseconds + 1)
        try Data(manifest.jsonText.utf8).write(to: URL(fileURLWithPath: file))
        #expect(try f.check(withStore: false).problems == [])
        let found = try f.check(withStore: true).problems
        #expect(found.contains { $0.hasPrefix("export trail, run 2 (") && $0.contains("but the log recorded") && $0.hasSuffix("it was replaced") }, "\(found)")
    }
}
