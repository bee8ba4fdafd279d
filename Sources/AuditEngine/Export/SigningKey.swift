import Crypto
import Foundation

/// An Ed25519 private key that signs export manifests.
///
/// The key file holds the 32-byte raw private key (the RFC 8032 seed) in base64 on one
/// line, and must be readable by its owner only (mode 0600), like an SSH key. It lives
/// outside the database: whoever can write the database cannot sign with it. The public
/// key is the 32-byte raw RFC 8032 public key, in base64, given to auditors.
public struct SigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    /// A new random key.
    public init() {
        key = Curve25519.Signing.PrivateKey()
    }

    /// The public key, base64: what an auditor passes to `verify-export --public-key`.
    public var publicKeyBase64: String { key.publicKey.rawRepresentation.base64EncodedString() }

    /// The Ed25519 signature (64 bytes) of `data`.
    func sign(_ data: [UInt8]) throws -> [UInt8] {
        do {
            return [UInt8](try key.signature(for: data))
        } catch {
            throw ExportError("signing the manifest failed: \(error)")
        }
    }

    /// Reads a key file.
    /// - Throws: `ExportError` when the file is missing, readable by others, or not a key.
    public static func load(file: String) throws -> SigningKey {
        var info = stat()
        guard stat(file, &info) == 0 else {
            throw ExportError("cannot read the signing key \(file): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ExportError("cannot read the signing key \(file): it is not a file")
        }
        if info.st_mode & 0o077 != 0 {
            throw ExportError(
                "the signing key \(file) can be read by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(file)`")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ExportError("cannot read the signing key \(file): \(String(cString: strerror(errno)))")
        }
        guard let text = String(data: data, encoding: .utf8),
              let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else {
            throw ExportError("\(file) is not an audit signing key (expected one line: a 32-byte Ed25519 private key in base64; make one with `audit keygen`)", category: .invalidInput)
        }
        return SigningKey(key: key)
    }

    private init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
    }

    /// Writes a new key to `file` (mode 0600, refusing to overwrite) and its public key
    /// to `file.pub`; returns the key.
    public static func generate(file: String) throws -> SigningKey {
        let key = SigningKey()
        let folder = (file as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists (a key is never overwritten)" : String(cString: strerror(errno))
            throw ExportError("cannot create the key file \(file): \(reason)")
        }
        let line = Array((key.key.rawRepresentation.base64EncodedString() + "\n").utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let failure = written == line.count ? (fsync(fd) == 0 ? 0 : errno) : (written < 0 ? errno : ENOSPC)
        close(fd)
        guard failure == 0 else {
            unlink(file)  // a partial key would be "never overwritten" for good
            throw ExportError("cannot write the key file \(file): \(DiskFull.reason(failure))")
        }
        do {
            try (key.publicKeyBase64 + "\n").write(toFile: file + ".pub", atomically: true, encoding: .utf8)
        } catch {
            throw ExportError("cannot write \(file).pub: \(error.localizedDescription)")
        }
        return key
    }
}

/// An Ed25519 public key that checks manifest signatures.
public struct PublicKey: Sendable, Equatable {
    let raw: [UInt8]

    /// Reads a public key given as base64 (44 characters) or hex (64), or the path of a
    /// file holding one (such as the `.pub` file `audit keygen` writes).
    public init(argument: String) throws {
        var text = argument.trimmingCharacters(in: .whitespacesAndNewlines)
        if FileManager.default.fileExists(atPath: text) {
            guard let contents = try? String(contentsOfFile: text, encoding: .utf8) else {
                throw ExportError("cannot read the public key file \(text)")
            }
            text = contents.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let data = Data(base64Encoded: text), data.count == 32 {
            raw = [UInt8](data)
        } else if text.count == 64, let bytes = Hex.decode(text) {
            raw = bytes
        } else {
            throw ExportError(
                "\(argument) is not an Ed25519 public key: give the 32-byte key in base64 (as `audit keygen` prints it) or hex, or a file holding it",
                category: .invalidInput)
        }
    }

    init(base64: String) throws {
        guard let data = Data(base64Encoded: base64), data.count == 32 else {
            throw ExportError("the manifest's public key is not a 32-byte base64 key", category: .integrity)
        }
        raw = [UInt8](data)
    }

    public var base64: String { Data(raw).base64EncodedString() }

    /// Whether `signature` is this key's Ed25519 signature of `data`.
    func isValidSignature(_ signature: [UInt8], for data: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: data)
    }
}

extension Hex {
    /// The bytes of a hex string, or nil when it is not hex.
    public static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}
