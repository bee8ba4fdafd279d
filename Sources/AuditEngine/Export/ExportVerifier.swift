import Crypto
import Foundation

/// What `verify-export` established about one export directory.
public struct ExportVerification: Sendable {
    public enum Signature: String, Sendable {
        /// Signed, and the signature checks with the public key the auditor gave.
        case trusted
        /// Signed, and it checks with the key the manifest names (`SignatureTrust.embeddedKey`).
        case untrustedKey = "valid, but with the manifest's own key (give --public-key to check who signed it)"
        case unsigned
    }

    public var directory: String
    public var manifest: ExportManifest
    /// SHA-256 (hex) of manifest.json: what the next run's manifest names as `previous`.
    public var manifestSHA256: String
    public var signature: Signature
    /// Whether the rows were recomputed from the database and compared.
    public var checkedAgainstStore: Bool
    /// Whether the event hash chain was recomputed from the exported rows alone.
    public var chainRecomputed: Bool
    /// What was not checked, and why.
    public var notes: [String]

    /// `{"ok":true,…}`: one line for scripts.
    public var json: String {
        CanonicalJSON.string(.object([
            JSONMember("ok", .bool(true)), JSONMember("directory", .string(directory)), JSONMember("name", .string(manifest.name)),
            JSONMember("run", .int(manifest.run)), JSONMember("rows", .int(manifest.rows)),
            JSONMember("files", .int(Int64(manifest.files.count))),
            JSONMember("from_seq", .int(manifest.selection.fromSeq)), JSONMember("to_seq", .int(manifest.selection.toSeq)),
            JSONMember("chain_head", .string(manifest.chain.head)), JSONMember("manifest_sha256", .string(manifestSHA256)),
            JSONMember("signature", .string(signature == .trusted ? "trusted" : signature == .unsigned ? "unsigned" : "untrusted_key")),
            JSONMember("chain_recomputed", .bool(chainRecomputed)), JSONMember("checked_against_database", .bool(checkedAgainstStore)),
            JSONMember("notes", .array(notes.map(JSONValue.string))),
        ]))
    }
}

/// An export that does not check out: every problem found, each naming the file (and
/// line or seq) that does not match.
public struct ExportVerificationFailure: AuditFailure, Equatable {
    public var directory: String
    public var problems: [String]
    public var category: FailureCategory { .integrity }

    public init(directory: String, problems: [String]) {
        self.directory = directory
        self.problems = problems
    }

    public var description: String {
        "export \(directory) does not verify:\n" + problems.map { "  - " + $0 }.joined(separator: "\n")
    }
}

/// Which key a manifest's signature is checked with. There is no default: an
/// auditor says which key they trust, or that they trust the manifest's own.
public enum SignatureTrust: Sendable, Equatable {
    /// The key the auditor was given, through a channel the operator does not
    /// control: a signature by any other key fails.
    case publicKey(PublicKey)
    /// The key each manifest names: proves that the manifest was not changed after it
    /// was signed, nothing about who signed it (anyone can re-sign with a key of theirs).
    case embeddedKey
}

/// Checks export directories offline: with only the directory and a public key, or
/// against the database too.
public enum ExportVerifier {
    /// Checks one export directory: the signature, every file's size and SHA-256, that
    /// no file was added or removed, the row counts, the rows against the selection, the
    /// hash chain of a contiguous events export, that a directory named as a run
    /// (`NAME-000042`) holds that run, and — with `store` — the chain head and the exact
    /// rows against the database.
    ///
    /// - Parameters:
    ///   - trust: the key the signature must check with.
    ///   - allowUnsigned: accept a manifest without `manifest.sig` (by default that is
    ///     a problem: an unsigned export proves nothing about who made it). A manifest
    ///     that names a signing key but lost its signature is a problem either way.
    /// - Throws: `ExportVerificationFailure` (integrity, exit 4) listing every problem.
    public static func verify(
        directory: String, trust: SignatureTrust, allowUnsigned: Bool = false, store: EventStore? = nil
    ) throws -> ExportVerification {
        var problems: [String] = []
        func fail() -> ExportVerificationFailure { ExportVerificationFailure(directory: directory, problems: problems) }
        guard let manifestData = FileManager.default.contents(atPath: directory + "/manifest.json") else {
            problems.append("no manifest.json: this is not a complete export (an interrupted export leaves none), or it was removed")
            throw fail()
        }
        let manifestBytes = [UInt8](manifestData)
        let manifest: ExportManifest
        do {
            manifest = try ExportManifest(json: manifestBytes, source: "manifest.json")
        } catch {
            problems.append("\(error)")
            throw fail()
        }
        if let claim = ExportSeries.claim(directory), claim.name != manifest.name || claim.run != manifest.run {
            problems.append(
                "the directory's name says export \(claim.name), run \(claim.run), but its manifest is export \(manifest.name), run \(manifest.run): run directories were renamed or swapped")
        }
        let signature = checkSignature(
            directory: directory, manifest: manifest, bytes: manifestBytes, trust: trust, allowUnsigned: allowUnsigned, problems: &problems)
        let beforeFiles = problems.count
        checkFiles(directory: directory, manifest: manifest, problems: &problems)
        var contents = ExportContents(directory: directory, manifest: manifest)
        // The rows are read when the files are the ones the manifest lists (even if the
        // manifest itself is forged: the rows then show what was changed).
        if problems.count == beforeFiles { contents.check(problems: &problems) }
        var notes = contents.notes
        if signature == .unsigned { notes.append("the export is not signed: it proves nothing about who made it (accepted: --allow-unsigned)") }
        var checked = false
        if let store, problems.isEmpty {
            checked = contents.compare(with: store, problems: &problems)
        } else if store == nil {
            notes.append("not compared with the database (give --db to check the chain head and the rows against the store)")
        }
        if !problems.isEmpty { throw fail() }
        return ExportVerification(
            directory: directory, manifest: manifest, manifestSHA256: Hex.encode(Array(SHA256.hash(data: manifestBytes))),
            signature: signature, checkedAgainstStore: checked, chainRecomputed: contents.chainRecomputed, notes: notes)
    }

    private static func checkSignature(
        directory: String, manifest: ExportManifest, bytes: [UInt8], trust: SignatureTrust, allowUnsigned: Bool, problems: inout [String]
    ) -> ExportVerification.Signature {
        guard let sigText = FileManager.default.contents(atPath: directory + "/manifest.sig") else {
            if manifest.publicKey != nil {
                problems.append("manifest.json names a signing key but manifest.sig is missing: the signature was removed")
            } else if !allowUnsigned {
                problems.append(
                    "the export is not signed (no manifest.sig), so it proves nothing about who made it; give --allow-unsigned to check an unsigned export")
            }
            return .unsigned
        }
        guard let signature = Data(base64Encoded: String(decoding: sigText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
              signature.count == 64
        else {
            problems.append("manifest.sig is not an Ed25519 signature (expected 64 bytes in base64)")
            return .unsigned
        }
        if case .publicKey(let publicKey) = trust {
            if let named = manifest.publicKey, named != publicKey.base64 {
                problems.append("manifest.json names the signing key \(named), not the trusted key \(publicKey.base64): it was signed by someone else")
            }
            if !publicKey.isValidSignature([UInt8](signature), for: bytes) {
                problems.append("manifest.sig is not a valid signature of manifest.json by the trusted key: the manifest was changed after it was signed, or it was signed by another key")
            }
            return .trusted
        }
        guard let named = manifest.publicKey, let key = try? PublicKey(base64: named) else {
            problems.append("manifest.sig is present but manifest.json names no valid signing key")
            return .unsigned
        }
        if !key.isValidSignature([UInt8](signature), for: bytes) {
            problems.append("manifest.sig is not a valid signature of manifest.json: the manifest was changed after it was signed")
        }
        return .untrustedKey
    }

    private static func checkFiles(directory: String, manifest: ExportManifest, problems: inout [String]) {
        let present = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        var listed: Set<String> = ["manifest.json", "manifest.sig"]
        for file in manifest.files {
            guard !file.path.contains("/"), !file.path.hasPrefix(".") else {
                problems.append("manifest.json lists \(file.path), which is not a plain file name in the export")
                continue
            }
            listed.insert(file.path)
            guard let data = FileManager.default.contents(atPath: directory + "/" + file.path) else {
                problems.append("\(file.path) is missing (the manifest lists it)")
                continue
            }
            let hash = Hex.encode(Array(SHA256.hash(data: data)))
            if Int64(data.count) != file.bytes || hash != file.sha256 {
                let swappedWith = manifest.files.first { $0.path != file.path && $0.sha256 == hash }
                problems.append(
                    "\(file.path): its content does not match the manifest (\(data.count) bytes, SHA-256 \(hash); the manifest says \(file.bytes) bytes, SHA-256 \(file.sha256))"
                        + (swappedWith.map { ": it holds what the manifest lists as \($0.path) (files were swapped)" } ?? ": it was changed after the export"))
            }
        }
        for extra in present.subtracting(listed).sorted() {
            problems.append("\(extra) is not listed in the manifest: a file was added to the export")
        }
    }
}
