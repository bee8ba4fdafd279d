import Foundation
import Testing

@Suite("Exports from the command line")
struct ExportCommandTests {
    func workspace(events: Int) throws -> TempDir {
        try TempDir.workspace(events: (0..<events).map { i in #"{"stream":"o-\#(i % 50)","type":"Placed","data":{"amount":\#(i)}}"# })
    }

    @Test("kill -9 during an export: no complete-looking directory, the watermark does not move, the next run covers the same events")
    func killDuringExport() throws {
        let dir = try workspace(events: 3000)
        let first = try audit(["export", "--name", "trail", "--incremental", "--into", "exports"], in: dir.path)
        #expect(first.status == 0, "\(first.stderr)")
        try audit(["append", "--stream", "late", "--type", "T", "--data", "{}"], in: dir.path)

        // Slow each row down so that the export is surely mid-way when killed.
        let slow = try RunningCommand(
            ["export", "--name", "trail", "--incremental", "--into", "exports", "--rows-per-file", "1"], in: dir.path,
            environment: ["AUDIT_TEST_EXPORT_ROW_DELAY_MS": "200"])
        let deadline = Date().addingTimeInterval(20)
        var partial: String?
        while Date() < deadline, partial == nil {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports")) ?? []
            partial = entries.first { $0.contains(".partial-") && ((try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports/" + $0))?.isEmpty == false) }
            usleep(5_000)
        }
        #expect(slow.process.isRunning, "the export finished before it could be killed")
        kill(slow.process.processIdentifier, SIGKILL)
        _ = slow.wait()
        let partialName = try #require(partial)
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports").sorted()
        #expect(entries == [partialName, "trail-000001"])  // no trail-000002
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/exports/" + partialName + "/manifest.json"))
        let db = dir.path + "/audit.db"
        #expect(try sqlite("SELECT max(to_seq) FROM export_runs WHERE name = 'trail' AND status = 'completed'", db) == "3000")
        #expect(try sqlite("SELECT status FROM export_runs WHERE run = 2", db) == "started")
        // verify-export on the leftover says it is not a complete export.
        let leftover = try audit(["verify-export", "exports/" + partialName, "--trust-embedded-key"], in: dir.path)
        #expect(leftover.status == 4 && leftover.stderr.contains("no manifest.json"))

        let next = try audit(["export", "--name", "trail", "--incremental", "--into", "exports"], in: dir.path)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stdout.contains(#""run":2"#) && next.stdout.contains(#""from_seq":3001"#))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports").sorted() == ["trail-000001", "trail-000002"])
        let verified = try audit(["verify-export", "exports", "--db", "audit.db", "--trust-embedded-key", "--allow-unsigned"], in: dir.path)
        #expect(verified.status == 0, "\(verified.stderr)")
        let failed = try audit(["events", "--stream", "audit-export-trail", "--type", "ExportFailed"], in: dir.path)
        #expect(failed.stdout.contains("interrupted"))
    }

    @Test("keygen, a signed export, and verify-export with the public key; a forged manifest exits 4 naming it")
    func signAndForge() throws {
        let dir = try workspace(events: 20)
        let keygen = try audit(["keygen", "keys/export.key"], in: dir.path)
        #expect(keygen.status == 0)
        let publicKey = keygen.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Data(base64Encoded: publicKey)?.count == 32)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.path + "/keys/export.key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try audit(["keygen", "keys/export.key"], in: dir.path).status == 1)  // never overwritten

        let export = try audit(["export", "--out", "out", "--format", "csv", "--key", "keys/export.key"], in: dir.path)
        #expect(export.status == 0, "\(export.stderr)")
        let ok = try audit(["verify-export", "out", "--public-key", publicKey, "--db", "audit.db"], in: dir.path)
        #expect(ok.status == 0 && ok.stdout.contains(#""signature":"trusted""#), "\(ok.stderr)")

        // Someone with another key re-signs an edited manifest.
        #expect(try audit(["keygen", "forger.key"], in: dir.path).status == 0)
        let manifestPath = dir.path + "/out/manifest.json"
        let edited = try String(contentsOfFile: manifestPath, encoding: .utf8).replacingOccurrences(of: "\"rows\": 20", with: "\"rows\": 19")
        try edited.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        let forged = try audit(["verify-export", "out", "--public-key", "keys/export.key.pub"], in: dir.path)
        #expect(forged.status == 4)
        #expect(forged.stderr.contains("manifest.sig is not a valid signature of manifest.json by the trusted key"), "\(forged.stderr)")

        // Usage and input errors.
        #expect(try audit(["export"], in: dir.path).status == 64)
        #expect(try audit(["export", "--out", "x", "--incremental"], in: dir.path).status == 64)
        #expect(try audit(["verify-export", "out", "--public-key", "not-a-key"], in: dir.path).status == 65)

        // Fail safe: no key named is a usage error naming --public-key; the manifest's
        // own key only when asked for, and then the re-signed forgery still shows.
        let noKey = try audit(["verify-export", "out"], in: dir.path)
        #expect(noKey.status == 64 && noKey.stderr.contains("--public-key"), "\(noKey.stderr)")
        #expect(try audit(["verify-export", "out", "--public-key", publicKey, "--trust-embedded-key"], in: dir.path).status == 64)
        let embedded = try audit(["verify-export", "out", "--trust-embedded-key"], in: dir.path)
        #expect(embedded.status == 4 && embedded.stderr.contains("manifest.sig is not a valid signature of manifest.json"), "\(embedded.stderr)")
        // An unsigned export fails unless --allow-unsigned, whichever key is trusted.
        #expect(try audit(["export", "--out", "plain"], in: dir.path).status == 0)
        for trust in [["--public-key", publicKey], ["--trust-embedded-key"]] {
            let unsigned = try audit(["verify-export", "plain"] + trust, in: dir.path)
            #expect(unsigned.status == 4 && unsigned.stderr.contains("not signed (no manifest.sig)"), "\(unsigned.stderr)")
            let allowed = try audit(["verify-export", "plain", "--allow-unsigned"] + trust, in: dir.path)
            #expect(allowed.status == 0 && allowed.stdout.contains(#""signature":"unsigned""#), "\(allowed.stderr)")
        }
        let existing = try audit(["export", "--out", "out"], in: dir.path)
        #expect(existing.status == 65 && existing.stderr.contains("already exists"))
    }

    @Test("schedule run --once runs what is due and records it; schedule list shows last and next runs")
    func scheduleOnce() throws {
        let dir = try workspace(events: 10)
        try """
            [exports.trail]
            what = "events"
            incremental = true
            destination = "exports/trail"
            schedule = "*/5 * * * *"
            """.write(toFile: dir.path + "/audit.toml", atomically: true, encoding: .utf8)
        let run = try audit(["schedule", "run", "--once"], in: dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(#""status":"completed""#))
        let again = try audit(["schedule", "run", "--once"], in: dir.path)
        #expect(again.status == 0 && again.stdout.isEmpty)  // nothing due until the next slot
        let list = try audit(["schedule", "list", "--format", "jsonl"], in: dir.path)
        #expect(list.status == 0 && list.stdout.contains(#""last_status":"completed""#) && list.stdout.contains(#""due":null"#), "\(list.stdout)")
        let bad = try audit(["schedule", "list", "--config", "missing.toml"], in: dir.path)
        #expect(bad.status == 1 && bad.stderr.contains("missing.toml"))
    }

    @Test("a saved query's name is not a path: query, export --query and a scheduled query refuse ../", arguments: ["../../outside", "../outside", "sub/q"])
    func savedQueryNames(name: String) throws {
        let dir = try workspace(events: 3)
        try FileManager.default.createDirectory(atPath: dir.path + "/queries/sub", withIntermediateDirectories: true)
        for file in ["../outside.sql", "outside.sql", "queries/sub/q.sql"] {
            try? "SELECT 42 AS leaked".write(toFile: dir.path + "/" + file, atomically: true, encoding: .utf8)
        }
        let query = try audit(["query", name], in: dir.path)
        #expect(query.status == 64 && query.stderr.contains("invalid saved query name \"\(name)\""), "\(query.stderr)")
        #expect(!query.stdout.contains("42"))
        let export = try audit(["export", "--query", name, "--out", "x"], in: dir.path)
        #expect(export.status == 64 && export.stderr.contains("--query: invalid saved query name"), "\(export.stderr)")
        #expect(!export.stderr.contains("invalid export name"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
        try "[exports.leak]\nwhat = \"query:\(name)\"\ndestination = \"exports/leak\"\nschedule = \"@daily\"\n"
            .write(toFile: dir.path + "/audit.toml", atomically: true, encoding: .utf8)
        let scheduled = try audit(["schedule", "run", "--once"], in: dir.path)
        #expect(scheduled.status == 65 && scheduled.stderr.contains("invalid saved query name"), "\(scheduled.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/exports/leak"))
    }

    @Test("verify-export --db applies verify's checks to what it compares: a type turned into a blob under STRICT removed is exit 4, as in verify, events and replay")
    func verifyExportChecksStoredValues() throws {
        let dir = try workspace(events: 20)
        #expect(try audit(["keygen", "keys/k"], in: dir.path).status == 0)
        #expect(try audit(["export", "--out", "full", "--key", "keys/k"], in: dir.path).status == 0)
        #expect(try audit(["verify-export", "full", "--public-key", "keys/k.pub", "--db", "audit.db"], in: dir.path).status == 0)
        // Two sessions: the second reads the schema the first rewrote.
        for sql in [
            "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, ') STRICT', ')') WHERE name = 'events';",
            "DROP TRIGGER events_are_not_updated; DROP TRIGGER events_are_not_deleted; UPDATE events SET type = CAST(type AS BLOB) WHERE seq = 5;",
        ] {
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            sqlite.arguments = [dir.path + "/audit.db", sql]
            try sqlite.run()
            sqlite.waitUntilExit()
            #expect(sqlite.terminationStatus == 0)
        }

        let checked = try audit(["verify-export", "full", "--public-key", "keys/k.pub", "--db", "audit.db"], in: dir.path)
        #expect(checked.status == 4, "\(checked.stdout)")
        #expect(!checked.stdout.contains(#""ok":true"#))
        #expect(checked.stderr.contains("seq 5: its type is stored as a blob, not text"), "\(checked.stderr)")
        for text in ["table events is not as the engine made it", "trigger events_are_not_updated is missing", "trigger events_are_not_deleted is missing"] {
            #expect(checked.stderr.contains(text), "\(checked.stderr)")
        }
        #expect(try audit(["verify"], in: dir.path).status == 4)
        for command in [["events", "--type", "Placed"], ["replay", "--rebuild"], ["export", "--out", "again"]] {
            let refused = try audit(command, in: dir.path)
            #expect(refused.status == 4 && refused.stderr.contains("run audit verify"), "\(command): \(refused.stderr)")
        }
    }

    @Test("verify-export of a folder: a removed run is caught with --db, a series not starting at run 1 is noted, swapped names exit 4")
    func missingAndRenamedRuns() throws {
        let dir = try workspace(events: 20)
        for _ in 1...3 {
            #expect(try audit(["export", "--name", "trail", "--incremental", "--into", "exports"], in: dir.path).status == 0)
        }
        let flags = ["--trust-embedded-key", "--allow-unsigned"]
        #expect(try audit(["verify-export", "exports", "--db", "audit.db"] + flags, in: dir.path).status == 0)
        let fm = FileManager.default
        try fm.moveItem(atPath: dir.path + "/exports/trail-000003", toPath: dir.path + "/newest")
        #expect(try audit(["verify-export", "exports"] + flags, in: dir.path).status == 0)
        let newest = try audit(["verify-export", "exports", "--db", "audit.db"] + flags, in: dir.path)
        #expect(newest.status == 4 && newest.stderr.contains("export trail, run 3: the log recorded it"), "\(newest.stderr)")
        try fm.moveItem(atPath: dir.path + "/newest", toPath: dir.path + "/exports/trail-000003")
        try fm.moveItem(atPath: dir.path + "/exports/trail-000001", toPath: dir.path + "/first")
        let offline = try audit(["verify-export", "exports"] + flags, in: dir.path)
        #expect(offline.status == 0 && offline.stdout.contains("export trail starts at run 2"), "\(offline.stdout)")
        #expect(try audit(["verify-export", "exports", "--db", "audit.db"] + flags, in: dir.path).status == 4)
        try fm.moveItem(atPath: dir.path + "/first", toPath: dir.path + "/exports/trail-000001")
        try fm.moveItem(atPath: dir.path + "/exports/trail-000001", toPath: dir.path + "/exports/tmp")
        try fm.moveItem(atPath: dir.path + "/exports/trail-000002", toPath: dir.path + "/exports/trail-000001")
        try fm.moveItem(atPath: dir.path + "/exports/tmp", toPath: dir.path + "/exports/trail-000002")
        let swapped = try audit(["verify-export", "exports"] + flags, in: dir.path)
        #expect(swapped.status == 4 && swapped.stderr.contains("the directory's name says export trail, run 1, but its manifest is export trail, run 2"), "\(swapped.stderr)")
    }
}
