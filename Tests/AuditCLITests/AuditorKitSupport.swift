import Crypto
import Foundation
import Testing

@testable import AuditEngine

/// The auditor's reference verifier, docs/auditor/verify_export.py, run with the
/// machine's `python3` (which needs the `cryptography` package).
let auditorKit = repositoryRoot + "/docs/auditor/verify_export.py"

/// Runs `python3 ARGUMENTS` in `directory`.
@discardableResult
func python(_ arguments: [String], in directory: String) throws -> CommandResult {
    try RunningCommand(["python3"] + arguments, in: directory, executable: "/usr/bin/env").wait()
}

/// What an attacker does to an export directory: edit its files and manifest, and
/// make the manifest consistent again (sizes, hashes, row counts, even the events'
/// hash chain), unsigned or signed with a key of their own.
struct ExportForgery {
    let directory: String

    var manifestPath: String { directory + "/manifest.json" }

    func manifest() throws -> ExportManifest {
        try ExportManifest(json: [UInt8](try Data(contentsOf: URL(fileURLWithPath: manifestPath))), source: "manifest.json")
    }

    func text(_ file: String) throws -> String { try String(contentsOfFile: directory + "/" + file, encoding: .utf8) }

    func write(_ file: String, _ text: String) throws { try text.write(toFile: directory + "/" + file, atomically: false, encoding: .utf8) }

    /// Rewrites one data file's lines (the line ends kept as they were).
    func editLines(_ file: String, _ edit: (inout [String]) throws -> Void) throws {
        var lines = try text(file).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let last = lines.removeLast()  // the empty string after the final line end
        try edit(&lines)
        try write(file, (lines + [last]).joined(separator: "\n"))
    }

    /// Sets each listed file's size, SHA-256 and rows to what the directory now holds.
    func refresh(_ m: inout ExportManifest) throws {
        for i in m.files.indices {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + m.files[i].path))
            m.files[i].bytes = Int64(data.count)
            m.files[i].sha256 = Hex.encode(Array(SHA256.hash(data: data)))
            if m.files[i].rows != nil {
                let rows = try ExportContents.rows(of: [UInt8](data), file: m.files[i].path, format: m.format)
                m.files[i].rows = Int64(rows.count)
            }
        }
        m.rows = m.files.reduce(0) { $0 + ($1.rows ?? 0) }
    }

    /// Recomputes every exported event's hash from `chain.before`, so that the rows
    /// chain again, and moves `chain.head` to the last one (a JSONL events export).
    func rechain(_ m: inout ExportManifest) throws {
        var previous = Hex.decode(m.chain.before)!
        var hasher = EventHash()
        for file in m.files where file.rows != nil {
            try editLines(file.path) { lines in
                lines = lines.map { line in
                    let v = try! JSONParser.parse(line)
                    var event = StoredEvent(
                        seq: v["seq"].flatMap(Self.int)!, id: v["id"]!.stringValue!, stream: v["stream"]!.stringValue!,
                        version: v["version"].flatMap(Self.int)!, type: v["type"]!.stringValue!,
                        occurredAt: try! Timestamp(rfc3339: v["occurred_at"]!.stringValue!),
                        recordedAt: try! Timestamp(rfc3339: v["recorded_at"]!.stringValue!),
                        data: CanonicalJSON.string(v["data"]!), meta: CanonicalJSON.string(v["meta"]!), hash: [])
                    event.hash = hasher.hash(of: event, previous: previous)
                    previous = event.hash
                    return event.jsonLine
                }
            }
        }
        m.chain.head = Hex.encode(previous)
    }

    private static func int(_ v: JSONValue) -> Int64? { if case .int(let n) = v { return n } else { return nil } }

    enum Signature {
        /// manifest.sig as it was (now over other bytes, when the manifest changed).
        case kept
        /// No manifest.sig, and no signing key named in the manifest.
        case removed
        /// Signed by this key, which the manifest names.
        case by(SigningKey)
    }

    /// Writes the manifest, and its signature as `signature` says.
    func save(_ m: ExportManifest, _ signature: Signature) throws {
        var m = m
        let sig = directory + "/manifest.sig"
        switch signature {
        case .kept: break
        case .removed: m.publicKey = nil
        case .by(let key): m.publicKey = key.publicKeyBase64
        }
        let bytes = Array(m.jsonText.utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: manifestPath))
        switch signature {
        case .kept: break
        case .removed: try FileManager.default.removeItem(atPath: sig)
        case .by(let key): try (Data(try key.sign(bytes)).base64EncodedString() + "\n").write(toFile: sig, atomically: false, encoding: .utf8)
        }
    }
}

/// A consistent rewrite of the log, as someone with write access to the database file
/// makes one: `edit` (SQL) changes stored events with the triggers dropped, then every
/// hash and the head record are recomputed and the triggers put back, so that
/// `audit verify` cannot tell. Uses the sqlite3 tool; run it while nothing writes.
func rewriteLog(_ db: String, edit: String) throws {
    let triggers = try sqlite("SELECT name || '|' || hex(sql) FROM sqlite_master WHERE type = 'trigger'", db)
        .split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
    func text(_ hex: Substring) -> String { String(decoding: Hex.decode(String(hex))!, as: UTF8.self) }
    _ = try sqlite(triggers.map { "DROP TRIGGER \"\($0[0])\";" }.joined() + edit, db)
    let rows = try sqlite(
        "SELECT seq, version, hex(id), hex(stream), hex(type), hex(occurred_at), hex(recorded_at), hex(data), hex(meta) FROM events ORDER BY seq",
        db)
    var script = ""
    var previous = EventHash.genesis
    var hasher = EventHash()
    var last: Int64 = 0
    for row in rows.split(separator: "\n") {
        let f = row.split(separator: "|", omittingEmptySubsequences: false)
        last = Int64(f[0])!
        previous = hasher.hash(
            previous: previous, seq: last, id: text(f[2]), stream: text(f[3]), version: Int64(f[1])!, type: text(f[4]),
            occurredAt: text(f[5]), recordedAt: text(f[6]), data: text(f[7]), meta: text(f[8]))
        script += "UPDATE events SET hash = X'\(Hex.encode(previous))' WHERE seq = \(last);\n"
    }
    script += "UPDATE chain_head SET seq = \(last), hash = X'\(Hex.encode(previous))';\n"
    script += triggers.map { text(Substring($0[1])) + ";\n" }.joined()
    _ = try sqlite("BEGIN;\n" + script + "COMMIT;", db)
}
