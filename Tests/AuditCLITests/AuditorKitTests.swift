import Foundation
import Testing

@testable import AuditEngine

/// The auditor's kit, docs/auditor/verify_export.py, reaches the verdict `audit
/// verify-export` reaches — on honest exports made by the real binary, on each row of
/// docs/exports.md's tampering table, and on rewritten, missing, renamed and re-signed
/// runs — and names the same problems.
@Suite("The auditor's kit agrees with verify-export")
struct AuditorKitTests {
    /// A workspace with the road-fines log, two events whose data and meta hold the
    /// numbers and strings where canonical text rules differ, a signing key, and these
    /// exports (all signed):
    /// - `trail`: an incremental series of three runs (JSONL; the edge events in run 1);
    /// - `csv`: every event as CSV, 100 rows a file; `payments`: only type Payment;
    /// - `outstanding`: two runs of a saved query (CSV);
    /// - `rewritten`, `rewritten-q`: two runs each (events; a query), with a
    ///   consistent rewrite of the log between them.
    final class Fixture: Sendable {
        let dir = TempDir()
        var path: String { dir.path }
        var publicKey: String { path + "/keys/export.key.pub" }

        static let edgeEvents = [
            #"{"id":"edge-1","stream":"edge","type":"Numbers","data":{"above_2^53":9007199254740994.0,"below_1e16":9999999999999998.0,"e16":1e16,"e21":1e21,"tiny":1e-7,"subnormal":5e-324,"negative_zero":-0.0,"int64_max":9223372036854775807,"int64_min":-9223372036854775808,"past_int64":9223372036854775808,"huge":123456789012345678901234567890,"integral_float":100.0,"exponent":1E2,"e-4":0.0001,"e-5":0.00001,"max":1.7976931348623157e308,"list":[1,1.5,-2.5e-8,true,null]}}"#,
            #"{"id":"edge-2","stream":"edge","type":"Strings","data":{"s":"tab\t nl\n cr\r nul\u0000 us\u001f del\u007f ls\u2028 e\u0301 é 😀 \"q\" \\ \/ ﻿bom"},"meta":{"\uff01":1,"😀":2,"a":3,"A":4,"":5,"é":6}}"#,
            // data as deep as ingest takes it: 128 levels, its own object included.
            #"{"id":"edge-3","stream":"edge","type":"Deep","data":"# + String(repeating: #"{"k":"#, count: 127) + "[1]" + String(repeating: "}", count: 127) + "}",
        ]

        init() throws {
            for name in ["docs", "projections"] {
                try FileManager.default.createSymbolicLink(atPath: path + "/" + name, withDestinationPath: repositoryRoot + "/" + name)
            }
            try FileManager.default.createDirectory(atPath: path + "/queries", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: repositoryRoot + "/queries/outstanding_fines.sql", toPath: path + "/queries/outstanding_fines.sql")
            try run("init")
            try run("ingest", "docs/data/road-fines.jsonl")
            try Self.edgeEvents.joined(separator: "\n").write(toFile: path + "/edge.jsonl", atomically: true, encoding: .utf8)
            try run("ingest", "edge.jsonl")
            try run("keygen", "keys/export.key")
            let key = ["--key", "keys/export.key"]
            func trail() throws { try run(["export", "--name", "trail", "--incremental", "--into", "exports/trail"] + key) }
            try trail()
            try run("append", "--stream", "S1", "--type", "Note", "--data", #"{"amount":12.5}"#)
            try trail()
            try trail()
            try run(["export", "--out", "exports/csv", "--format", "csv", "--rows-per-file", "100"] + key)
            try run(["export", "--out", "exports/payments", "--type", "Payment"] + key)
            try run("replay")
            func query(_ name: String, into: String) throws {
                try run(["export", "--query", "outstanding_fines", "--name", name, "--format", "csv", "--into", into] + key)
            }
            try query("outstanding", into: "exports/outstanding")
            try run("append", "--stream", "S45359", "--type", "Payment", "--data", #"{"paymentAmount":35.0}"#)
            try query("outstanding", into: "exports/outstanding")
            try run(["export", "--name", "rewritten", "--incremental", "--into", "exports/rewritten"] + key)
            try query("rewritten-q", into: "exports/rewritten-q")
            try rewriteLog(path + "/audit.db", edit: "UPDATE events SET data = replace(data, '\"amount\":31.3', '\"amount\":1.0') WHERE seq = 1;")
            try run("append", "--stream", "S1", "--type", "Note", "--data", #"{"amount":1}"#)
            try run(["export", "--name", "rewritten", "--incremental", "--into", "exports/rewritten"] + key)
            try query("rewritten-q", into: "exports/rewritten-q")
        }

        func run(_ arguments: String...) throws { try run(arguments) }

        func run(_ arguments: [String]) throws {
            let result = try audit(arguments, in: path)
            try #require(result.status == 0, "audit \(arguments.joined(separator: " ")): \(result.stderr)")
        }
    }

    /// One check: how the exports are tampered with, what to verify and how, and the
    /// verdict both must reach, with a phrase both must say.
    struct Case {
        var name: String
        var paths: [String]
        var trust: Trust = .publicKey
        var expected: Int32
        var says: String?
        var tamper: (ExportTampering) throws -> Void = { _ in }
    }

    enum Trust {
        case publicKey, embeddedKey, embeddedKeyAllowingUnsigned, publicKeyAllowingUnsigned, none, argument(String)
    }

    /// Copies the fixture's exports, tampers with the copy, and runs both verifiers.
    func check(_ c: Case, _ fixture: Fixture) throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: fixture.path + "/exports", toPath: dir.path + "/exports")
        try c.tamper(ExportTampering(root: dir.path + "/exports", attacker: try SigningKey.generate(file: dir.path + "/attacker.key")))
        var arguments = c.paths.map { "exports/" + $0 }
        switch c.trust {
        case .publicKey: arguments += ["--public-key", fixture.publicKey]
        case .publicKeyAllowingUnsigned: arguments += ["--public-key", fixture.publicKey, "--allow-unsigned"]
        case .embeddedKey: arguments += ["--trust-embedded-key"]
        case .embeddedKeyAllowingUnsigned: arguments += ["--trust-embedded-key", "--allow-unsigned"]
        case .none: break
        case .argument(let key): arguments += ["--public-key", key]
        }
        let engine = try audit(["verify-export"] + arguments, in: dir.path)
        let kit = try python([auditorKit] + arguments, in: dir.path)
        #expect(engine.status == c.expected, "\(c.name): audit verify-export exited \(engine.status), expected \(c.expected): \(engine.stderr)")
        #expect(kit.status == engine.status, "\(c.name): the kit exited \(kit.status), verify-export \(engine.status):\n\(kit.stderr)\(engine.stderr)")
        if let says = c.says {
            #expect((engine.stdout + engine.stderr).contains(says), "\(c.name): verify-export does not say \"\(says)\": \(engine.stderr)")
            #expect((kit.stdout + kit.stderr).contains(says), "\(c.name): the kit does not say \"\(says)\": \(kit.stderr)")
        }
        // The same problems, in the same words (but a JSON parser's own reason).
        func problems(_ text: String) -> [String] {
            text.split(separator: "\n").filter { $0.hasPrefix("  - ") }
                .map { $0.replacingOccurrences(of: #"not valid JSON: .*"#, with: "not valid JSON", options: .regularExpression) }.sorted()
        }
        #expect(problems(kit.stderr) == problems(engine.stderr), "\(c.name): the kit's problems differ from verify-export's")
        #expect(engine.stdout.split(separator: "\n").count == kit.stdout.split(separator: "\n").count, "\(c.name): not the same exports verified")
    }

    @Test("honest exports verify; without a key both refuse (64), a key or directory that is not one is 65")
    func honest() throws {
        let fixture = try Fixture()
        let all = ["trail", "csv", "payments", "outstanding"]
        for c in [
            Case(name: "an incremental series, a CSV export in four files, a filtered export, a query series", paths: all, expected: 0,
                 says: #""signature":"trusted""#),
            Case(name: "the same with --trust-embedded-key", paths: all, trust: .embeddedKey, expected: 0, says: #""signature":"untrusted_key""#),
            Case(name: "the event chain is recomputed from the rows", paths: ["trail/trail-000001", "csv"], expected: 0,
                 says: #""chain_recomputed":true"#),
            Case(name: "no key given", paths: all, trust: .none, expected: 64, says: "give --public-key KEY"),
            Case(name: "a key that is not a key", paths: all, trust: .argument("notakey"), expected: 65, says: "is not an Ed25519 public key"),
            Case(name: "a directory that does not exist", paths: ["nosuch"], expected: 65, says: "no such export directory"),
        ] { try check(c, fixture) }
    }

    @Test("each row of the tampering table in docs/exports.md, and the variants an attacker with their own key makes")
    func tamperingTable() throws {
        let fixture = try Fixture()
        let changed = "its content does not match the manifest"
        for c in [
            Case(name: "a changed byte", paths: ["csv"], expected: 4, says: changed) { try $0.replace("csv/events-000002.csv", "Payment", "Paymenu") },
            Case(name: "a removed line", paths: ["csv"], expected: 4, says: changed) { try $0.lines("csv/events-000001.csv") { $0.remove(at: 5) } },
            Case(name: "an added line", paths: ["trail"], expected: 4, says: changed) { try $0.lines("trail/trail-000001/events-000001.jsonl") { $0.insert($0[9], at: 9) } },
            Case(name: "two files swapped", paths: ["csv"], expected: 4, says: "files were swapped") { try $0.swap("csv/events-000001.csv", "csv/events-000002.csv") },
            Case(name: "a file added", paths: ["payments"], expected: 4, says: "a file was added") { try $0.write("payments/notes.txt", "x") },
            Case(name: "a hidden file added", paths: ["payments"], expected: 4, says: "a file was added") { try $0.write("payments/.x", "x") },
            Case(name: "a file removed", paths: ["csv"], expected: 4, says: "is missing") { try $0.remove("csv/events-000004.csv") },
            Case(name: "the manifest edited", paths: ["payments"], expected: 4, says: "not a valid signature of manifest.json by the trusted key") {
                try $0.forge("payments", .kept) { m, _ in m.createdAt = Timestamp(milliseconds: 0) }
            },
            Case(name: "the manifest re-signed with another key", paths: ["payments"], expected: 4, says: "it was signed by someone else") {
                try $0.forge("payments", .attacker) { m, _ in m.createdAt = Timestamp(milliseconds: 0) }
            },
            Case(name: "… which --trust-embedded-key cannot tell", paths: ["payments"], trust: .embeddedKey, expected: 0) {
                try $0.forge("payments", .attacker) { m, _ in m.createdAt = Timestamp(milliseconds: 0) }
            },
            Case(name: "rows removed and the manifest's hashes updated", paths: ["trail/trail-000001"], expected: 4, says: "seq 5 is missing") {
                try $0.forge("trail/trail-000001", .kept) { m, f in try f.editLines("events-000001.jsonl") { $0.remove(at: 4) }; try f.refresh(&m) }
            },
            Case(name: "… and re-signed with another key (--trust-embedded-key): the chain", paths: ["trail/trail-000001"], trust: .embeddedKey,
                 expected: 4, says: "seq 5 is missing") {
                try $0.forge("trail/trail-000001", .attacker) { m, f in try f.editLines("events-000001.jsonl") { $0.remove(at: 4) }; try f.refresh(&m) }
            },
            Case(name: "… the same in CSV", paths: ["csv"], trust: .embeddedKey, expected: 4, says: "seq 5 is missing") {
                try $0.forge("csv", .attacker) { m, f in try f.editLines("events-000001.csv") { $0.remove(at: 5) }; try f.refresh(&m) }
            },
            Case(name: "the last rows removed, the manifest updated and re-signed", paths: ["trail/trail-000001"], trust: .embeddedKey,
                 expected: 4, says: "events were removed from the end") {
                try $0.forge("trail/trail-000001", .attacker) { m, f in try f.editLines("events-000001.jsonl") { $0.removeLast() }; try f.refresh(&m) }
            },
            Case(name: "a value edited, the manifest updated and re-signed", paths: ["trail/trail-000001"], trust: .embeddedKey,
                 expected: 4, says: "seq 1 does not match its hash") {
                try $0.forge("trail/trail-000001", .attacker) { m, f in
                    try f.editLines("events-000001.jsonl") { $0[0] = $0[0].replacingOccurrences(of: "31.3", with: "3.13") }
                    try f.refresh(&m)
                }
            },
            Case(name: "… the same in CSV", paths: ["csv"], trust: .embeddedKey, expected: 4, says: "seq 1 does not match its hash") {
                try $0.forge("csv", .attacker) { m, f in try f.editLines("events-000001.csv") { $0[1] = $0[1].replacingOccurrences(of: "31.3", with: "3.13") }; try f.refresh(&m) }
            },
            Case(name: "the edge events' numbers written another way (1e2 for 100.0, keys reordered): the same canonical text, the chain holds",
                 paths: ["trail/trail-000001"], trust: .embeddedKey, expected: 0, says: #""chain_recomputed":true"#) {
                try $0.forge("trail/trail-000001", .attacker) { m, f in
                    try f.editLines("events-000001.jsonl") { lines in
                        let i = try #require(lines.firstIndex { $0.contains(#""id":"edge-1""#) })
                        for (stored, other) in [
                            (#""integral_float":100.0"#, #""integral_float":1e2"#), (#""exponent":100.0"#, #""exponent":1.00E+2"#),
                            (#""above_2^53":9.007199254740994e+15"#, #""above_2^53":9007199254740994.0"#),
                            (#""below_1e16":9.999999999999998e+15"#, #""below_1e16":9999999999999998.0"#),
                            (#""e16":1e+16"#, #""e16":10000000000000000.0"#), (#""tiny":1e-07"#, #""tiny":0.0000001"#),
                            (#""e-5":1e-05"#, #""e-5":0.00001"#), (#""e-4":0.0001"#, #""e-4":1e-4"#),
                            (#""past_int64":9.223372036854776e+18"#, #""past_int64":9223372036854775808"#),
                            (#""huge":1.2345678901234568e+29"#, #""huge":123456789012345678901234567890"#),
                            (#""data":{"#, #""data": { "#),
                        ] {
                            try #require(lines[i].contains(stored), "the edge event is stored as \(lines[i])")
                            lines[i] = lines[i].replacingOccurrences(of: stored, with: other)
                        }
                    }
                    try f.refresh(&m)
                }
            },
            Case(name: "a rewritten newest run (rows edited, rechained, manifest updated, re-signed): only the trusted key tells",
                 paths: ["trail"], trust: .embeddedKey, expected: 0) { try $0.rewriteRun("trail/trail-000003") },
            Case(name: "… with the trusted key", paths: ["trail"], expected: 4, says: "it was signed by someone else") { try $0.rewriteRun("trail/trail-000003") },
            Case(name: "a rewritten run in the middle: the next run names another manifest", paths: ["trail"], trust: .embeddedKey, expected: 4,
                 says: "run 2 was replaced") { try $0.rewriteRun("trail/trail-000002") },
            Case(name: "manifest.json and manifest.sig swapped between runs", paths: ["trail"], expected: 4, says: changed) {
                try $0.swap("trail/trail-000001/manifest.json", "trail/trail-000002/manifest.json")
                try $0.swap("trail/trail-000001/manifest.sig", "trail/trail-000002/manifest.sig")
            },
            Case(name: "the signature removed, and the manifest's signing key with it", paths: ["payments"], expected: 4, says: "the export is not signed") {
                try $0.forge("payments", .removed) { _, _ in }
            },
            Case(name: "… accepted with --allow-unsigned", paths: ["payments"], trust: .publicKeyAllowingUnsigned, expected: 0, says: "not signed") {
                try $0.forge("payments", .removed) { _, _ in }
            },
            Case(name: "the signature removed only", paths: ["payments"], trust: .publicKeyAllowingUnsigned, expected: 4, says: "the signature was removed") {
                try $0.remove("payments/manifest.sig")
            },
            Case(name: "a manifest that is not JSON", paths: ["payments"], expected: 4, says: "not valid JSON") { try $0.write("payments/manifest.json", "{") },
            Case(name: "manifest.json removed", paths: ["payments"], expected: 4, says: "no manifest.json") { try $0.remove("payments/manifest.json") },
        ] { try check(c, fixture) }
    }

    @Test("runs: a log rewritten between them, and runs missing, renamed, swapped, replaced by an unsigned manifest")
    func runs() throws {
        let fixture = try Fixture()
        let renamed = "run directories were renamed or swapped"
        for c in [
            Case(name: "the log rewritten consistently between two runs", paths: ["rewritten"], expected: 4,
                 says: "the log was rewritten between run 1 and run 2"),
            Case(name: "… between two runs of a query", paths: ["rewritten-q"], expected: 4, says: "the log was rewritten between run 1 and run 2"),
            Case(name: "the first run removed: a note", paths: ["trail"], expected: 0, says: "starts at run 2 in exports/trail: run 1 is not here") {
                try $0.remove("trail/trail-000001")
            },
            Case(name: "the first two runs removed", paths: ["trail"], expected: 0, says: "runs 1…2 are not here") {
                try $0.remove("trail/trail-000001")
                try $0.remove("trail/trail-000002")
            },
            Case(name: "the first run there but failing: the note says so", paths: ["trail"], expected: 4,
                 says: "the first run of export trail in exports/trail that verifies is run 2: run 1 (exports/trail/trail-000001) is here but does not verify") {
                try $0.lines("trail/trail-000001/events-000001.jsonl") { $0[0] = $0[0].replacingOccurrences(of: "31.3", with: "3.13") }
            },
            Case(name: "the newest run removed: offline, nothing to compare with", paths: ["trail"], expected: 0) { try $0.remove("trail/trail-000003") },
            Case(name: "a run in the middle removed", paths: ["trail"], expected: 4, says: "run 2 is missing between it and run 1") {
                try $0.remove("trail/trail-000002")
            },
            Case(name: "the middle run's manifest removed: the chain says it is there without one", paths: ["trail"], expected: 4,
                 says: "run 2 (exports/trail/trail-000002) is between it and run 1 but has no manifest.json") {
                try $0.remove("trail/trail-000002/manifest.json")
            },
            Case(name: "the first run's manifest removed", paths: ["trail"], expected: 4,
                 says: "run 1 (exports/trail/trail-000001) is here but has no manifest.json") { try $0.remove("trail/trail-000001/manifest.json") },
            Case(name: "run directories swapped", paths: ["trail"], expected: 4, says: renamed) { try $0.swap("trail/trail-000001", "trail/trail-000002") },
            Case(name: "a run renamed", paths: ["trail"], expected: 4, says: renamed) { try $0.move("trail/trail-000003", "trail/trail-000007") },
            Case(name: "a run's manifest replaced by a consistent unsigned one", paths: ["trail"], trust: .embeddedKeyAllowingUnsigned, expected: 4,
                 says: "run 2 was replaced") { try $0.forge("trail/trail-000002", .removed) { m, _ in m.createdAt = Timestamp(milliseconds: 0) } },
            Case(name: "… the newest run's: offline, nothing to compare with", paths: ["trail"], trust: .embeddedKeyAllowingUnsigned, expected: 0) {
                try $0.forge("trail/trail-000003", .removed) { m, _ in m.createdAt = Timestamp(milliseconds: 0) }
            },
            Case(name: "a query result's row removed, the manifest updated and re-signed, in the newest run: offline, nothing tells",
                 paths: ["outstanding"], trust: .embeddedKey, expected: 0) {
                try $0.forge("outstanding/outstanding-000002", .attacker) { m, f in try f.editLines("result-000001.csv") { $0.remove(at: 3) }; try f.refresh(&m) }
            },
            Case(name: "… in the first run: the next run names another manifest", paths: ["outstanding"], trust: .embeddedKey, expected: 4,
                 says: "run 1 was replaced") {
                try $0.forge("outstanding/outstanding-000001", .attacker) { m, f in try f.editLines("result-000001.csv") { $0.remove(at: 3) }; try f.refresh(&m) }
            },
            Case(name: "two runs of a query swapped", paths: ["outstanding"], expected: 4, says: renamed) {
                try $0.swap("outstanding/outstanding-000001", "outstanding/outstanding-000002")
            },
        ] { try check(c, fixture) }
    }

    @Test("folders: a run without manifest.json, an empty run, a file, a folder of runs in a folder: nothing is passed over in silence")
    func folders() throws {
        let fixture = try Fixture()
        let incomplete = "no manifest.json: this is not a complete export"
        func nest(_ t: ExportTampering) throws {
            try FileManager.default.createDirectory(atPath: t.root + "/nest", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: t.root + "/trail", toPath: t.root + "/nest/trail")
            try FileManager.default.copyItem(atPath: t.root + "/outstanding", toPath: t.root + "/nest/outstanding")
        }
        for c in [
            Case(name: "the newest run's manifest removed", paths: ["trail"], expected: 4, says: incomplete) { try $0.remove("trail/trail-000003/manifest.json") },
            Case(name: "the newest run emptied", paths: ["trail"], expected: 4, says: incomplete) {
                try $0.remove("trail/trail-000003")
                try FileManager.default.createDirectory(atPath: $0.root + "/trail/trail-000003", withIntermediateDirectories: false)
            },
            Case(name: "… given directly", paths: ["trail/trail-000003"], expected: 4, says: incomplete) { try $0.remove("trail/trail-000003/manifest.json") },
            Case(name: "a directory not named as a run, without a manifest", paths: ["trail"], expected: 4, says: "export exports/trail/extra does not verify") {
                try FileManager.default.createDirectory(atPath: $0.root + "/trail/extra", withIntermediateDirectories: false)
                try $0.write("trail/extra/events-000001.jsonl", "")
            },
            Case(name: "a file beside the runs", paths: ["trail"], expected: 4, says: "not a directory") { try $0.write("trail/trail-000004", "") },
            Case(name: "an interrupted export's partial directory is passed over", paths: ["trail"], expected: 0) {
                try FileManager.default.createDirectory(atPath: $0.root + "/trail/.trail-000004.partial-1a2b3c4d", withIntermediateDirectories: false)
            },
            Case(name: "a folder of folders of runs is checked all the way down", paths: ["nest"], expected: 0,
                 says: #""directory":"exports/nest/trail/trail-000003""#, tamper: nest),
            Case(name: "… a row changed in a nested run", paths: ["nest"], expected: 4, says: "its content does not match the manifest") {
                try nest($0)
                try $0.replace("nest/trail/trail-000001/events-000001.jsonl", "31.3", "3.13")
            },
            Case(name: "… a nested run's manifest removed", paths: ["nest"], expected: 4, says: incomplete) {
                try nest($0)
                try $0.remove("nest/outstanding/outstanding-000002/manifest.json")
            },
            Case(name: "… a link back up the tree is walked once", paths: ["nest"], expected: 0) {
                try nest($0)
                try FileManager.default.createSymbolicLink(atPath: $0.root + "/nest/trail/up", withDestinationPath: "..")
            },
        ] { try check(c, fixture) }
    }
}

/// Tampering with a copy of the fixture's exports (paths relative to it).
struct ExportTampering {
    let root: String
    let attacker: SigningKey

    enum Signer { case kept, removed, attacker }

    func write(_ path: String, _ text: String) throws { try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8) }
    func remove(_ path: String) throws { try FileManager.default.removeItem(atPath: root + "/" + path) }
    func move(_ from: String, _ to: String) throws { try FileManager.default.moveItem(atPath: root + "/" + from, toPath: root + "/" + to) }
    func swap(_ a: String, _ b: String) throws {
        try move(a, a + ".swap")
        try move(b, a)
        try move(a + ".swap", b)
    }
    func replace(_ path: String, _ old: String, _ new: String) throws {
        let text = try String(contentsOfFile: root + "/" + path, encoding: .utf8)
        try #require(text.contains(old))
        try write(path, text.replacingOccurrences(of: old, with: new))
    }
    func lines(_ path: String, _ edit: (inout [String]) throws -> Void) throws {
        let url = URL(fileURLWithPath: root + "/" + path)
        try ExportForgery(directory: url.deletingLastPathComponent().path).editLines(url.lastPathComponent, edit)
    }

    /// Edits an export's manifest (and, through the forgery, its files), then saves it
    /// as `signer` says.
    func forge(_ directory: String, _ signer: Signer, _ edit: (inout ExportManifest, ExportForgery) throws -> Void) throws {
        let forgery = ExportForgery(directory: root + "/" + directory)
        var m = try forgery.manifest()
        try edit(&m, forgery)
        switch signer {
        case .kept: try forgery.save(m, .kept)
        case .removed: try forgery.save(m, .removed)
        case .attacker: try forgery.save(m, .by(attacker))
        }
    }

    /// A run rewritten consistently: an amount edited in its first row, every row's
    /// hash recomputed, the manifest updated and re-signed with the attacker's key.
    func rewriteRun(_ directory: String) throws {
        try forge(directory, .attacker) { m, f in
            try f.editLines(m.files[0].path) { $0[0] = $0[0].replacingOccurrences(of: #""data":{"#, with: #""data":{"forged":true,"#) }
            try f.rechain(&m)
            try f.refresh(&m)
        }
    }
}
