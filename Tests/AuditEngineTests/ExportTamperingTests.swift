import Crypto
import Foundation
import Testing

@testable import AuditEngine

@Suite("Export tampering is detected")
struct ExportTamperingTests {
    /// A signed export in 3 files of 10, 10 and 5 events.
    struct Fixture {
        let dir = TempDir()
        let store: EventStore
        let key = SigningKey()
        var out: String { dir.file("out") }
        var trusted: PublicKey { try! PublicKey(argument: key.publicKeyBase64) }

        init(format: ExportFormat = .jsonl) throws {
            store = try exportStore(dir, count: 25)
            _ = try store.export(eventsExport(dir.file("out"), format: format, key: key, rowsPerFile: 10))
        }

        func path(_ file: String) -> String { out + "/" + file }
        func read(_ file: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(file)))) }
        func write(_ file: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path(file))) }
        func all() -> [String] { problems(out, key: trusted, store: store) }
    }

    @Test("an untouched export verifies", arguments: ExportFormat.allCases)
    func untouched(format: ExportFormat) throws {
        #expect(try Fixture(format: format).all() == [])
    }

    @Test("one changed byte in a data file", arguments: ExportFormat.allCases)
    func changedByte(format: ExportFormat) throws {
        let f = try Fixture(format: format)
        var bytes = try f.read("events-000002.\(format)")
        let i = bytes.firstIndex(of: UInt8(ascii: "7"))!  // a digit of an amount, seq or hash
        bytes[i] = UInt8(ascii: "8")
        try f.write("events-000002.\(format)", bytes)
        let found = f.all()
        #expect(found.contains { $0.hasPrefix("events-000002.\(format): its content does not match the manifest") && $0.contains("changed") }, "\(found)")
        // Without the database, and without the key, it is still caught.
        #expect(!problems(f.out).isEmpty)
    }

    @Test("a removed line", arguments: ExportFormat.allCases)
    func removedLine(format: ExportFormat) throws {
        let f = try Fixture(format: format)
        var lines = try f.read("events-000001.\(format)").split(separator: 0x0A, omittingEmptySubsequences: false)
        lines.remove(at: 3)
        try f.write("events-000001.\(format)", Array(lines.joined(separator: [0x0A])))
        let found = f.all()
        #expect(found.contains { $0.hasPrefix("events-000001.\(format): its content does not match") }, "\(found)")
    }

    @Test("a removed line, with the file's hash and size rewritten in the manifest, breaks the signature")
    func removedLineAndManifestEdited() throws {
        let f = try Fixture()
        var lines = try f.read("events-000001.jsonl").split(separator: 0x0A, omittingEmptySubsequences: false)
        lines.remove(at: 3)
        let edited = Array(lines.joined(separator: [0x0A]))
        try f.write("events-000001.jsonl", edited)
        let manifest = String(decoding: try f.read("manifest.json"), as: UTF8.self)
        let old = try ExportManifest(json: try f.read("manifest.json"), source: "m").files[0]
        let forged = manifest.replacingOccurrences(of: old.sha256, with: Hex.encode(Array(SHA256.hash(data: edited))))
            .replacingOccurrences(of: "\"bytes\": \(old.bytes)", with: "\"bytes\": \(edited.count)")
        try f.write("manifest.json", Array(forged.utf8))
        let found = f.all()
        #expect(found.contains { $0.contains("manifest.sig is not a valid signature of manifest.json") }, "\(found)")
        #expect(found.contains { $0.contains("events-000001.jsonl: 9 rows, but the manifest says 10") }, "\(found)")
        // Offline, without any key: the recomputed hash chain still shows the gap.
        let offline = problems(f.out)
        #expect(offline.contains { $0.contains("seq 4 is missing") }, "\(offline)")
    }

    @Test("two swapped files")
    func swapped() throws {
        let f = try Fixture()
        let a = try f.read("events-000001.jsonl"), b = try f.read("events-000002.jsonl")
        try f.write("events-000001.jsonl", b)
        try f.write("events-000002.jsonl", a)
        let found = f.all()
        #expect(found.contains { $0.hasPrefix("events-000001.jsonl") && $0.contains("holds what the manifest lists as events-000002.jsonl (files were swapped)") }, "\(found)")
    }

    @Test("an edited manifest")
    func editedManifest() throws {
        let f = try Fixture()
        let text = String(decoding: try f.read("manifest.json"), as: UTF8.self).replacingOccurrences(of: "\"rows\": 25", with: "\"rows\": 24")
        try f.write("manifest.json", Array(text.utf8))
        let found = f.all()
        #expect(found.contains { $0.contains("manifest.sig is not a valid signature of manifest.json by the trusted key") }, "\(found)")
        // With the manifest's own key (no trusted key given) it is caught too.
        #expect(problems(f.out).contains { $0.contains("not a valid signature") })
    }

    @Test("a manifest re-signed with another key")
    func forgedSignature() throws {
        let f = try Fixture()
        let forger = SigningKey()
        let text = String(decoding: try f.read("manifest.json"), as: UTF8.self)
            .replacingOccurrences(of: f.key.publicKeyBase64, with: forger.publicKeyBase64)
            .replacingOccurrences(of: "\"rows\": 25", with: "\"rows\": 24")
        try f.write("manifest.json", Array(text.utf8))
        try f.write("manifest.sig", Array((Data(try forger.sign(Array(text.utf8))).base64EncodedString() + "\n").utf8))
        let found = f.all()
        #expect(found.contains { $0.contains("names the signing key \(forger.publicKeyBase64), not the trusted key") }, "\(found)")
        #expect(found.contains { $0.contains("not a valid signature of manifest.json by the trusted key") }, "\(found)")
    }

    @Test("a removed signature, an added file, a removed file")
    func filesAddedAndRemoved() throws {
        let f = try Fixture()
        try FileManager.default.removeItem(atPath: f.path("manifest.sig"))
        try f.write("notes.txt", Array("hello".utf8))
        try FileManager.default.removeItem(atPath: f.path("events-000003.jsonl"))
        let found = f.all()
        #expect(found.contains { $0.contains("names a signing key but manifest.sig is missing") }, "\(found)")
        #expect(found.contains { $0 == "notes.txt is not listed in the manifest: a file was added to the export" }, "\(found)")
        #expect(found.contains { $0 == "events-000003.jsonl is missing (the manifest lists it)" }, "\(found)")
        #expect(problems(f.out).contains { $0.contains("names a signing key but manifest.sig is missing") })
    }

    @Test("the signature and the manifest's signing key removed, the manifest edited: refused as unsigned unless unsigned exports are allowed")
    func strippedSignature() throws {
        let f = try Fixture()
        try FileManager.default.removeItem(atPath: f.path("manifest.sig"))
        let manifest = try ExportManifest(json: try f.read("manifest.json"), source: "m")
        var stripped = manifest
        stripped.publicKey = nil
        try f.write("manifest.json", Array(stripped.jsonText.utf8))
        for key in [f.trusted, nil] {
            let found = problems(f.out, key: key, allowUnsigned: false, store: f.store)
            #expect(found.contains { $0.contains("the export is not signed (no manifest.sig), so it proves nothing about who made it") }, "\(found)")
        }
        #expect(problems(f.out, key: f.trusted, allowUnsigned: true, store: f.store) == [])
    }

    @Test("an export whose rows and hashes were all rewritten consistently (a forged unsigned export) fails against the store")
    func rewrittenHistory() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 5)
        let other = TempDir()
        let otherStore = try exportStore(other, count: 5)  // same content, different ids and times: another history
        _ = try otherStore.export(eventsExport(dir.file("forged")))
        #expect(problems(dir.file("forged")) == [])  // consistent in itself
        let found = problems(dir.file("forged"), store: store)
        #expect(found.contains { $0.contains("the chain head at seq 5") && $0.contains("this export is not from it") }, "\(found)")
    }
}
