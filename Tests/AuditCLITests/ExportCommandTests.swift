import Foundation
import Testing

@Suite("Exports from the command line")
struct ExportCommandTests {
    func workspace(events: Int) throws -> TempDir {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let lines = (0..<events).map { i in #"{"stream":"o-\#(i % 50)","type":"Placed","data":{"amount":\#(i)}}"# }
        let file = dir.path + "/events.jsonl"
        _ = FileManager.default.createFile(atPath: file, contents: Data(lines.joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", file], in: dir.path).status == 0)
        return dir
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
        let leftover = try audit(["verify-export", "exports/" + partialName], in: dir.path)
        #expect(leftover.status == 4 && leftover.stderr.contains("no manifest.json"))

        let next = try audit(["export", "--name", "trail", "--incremental", "--into", "exports"], in: dir.path)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stdout.contains(#""run":2"#) && next.stdout.contains(#""from_seq":3001"#))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/exports").sorted() == ["trail-000001", "trail-000002"])
        let verified = try audit(["verify-export", "exports", "--db", "audit.db"], in: dir.path)
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
}
