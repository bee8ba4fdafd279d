import Crypto
import Foundation

/// The code of a projection: its script and every helper module of the folder's lib/,
/// as files named relative to the projections folder (`fine_balances.lua`,
/// `lib/money.lua`). It is what a build is made of, read from a folder or from the
/// database's code history (`audit_code`); its hash is the same either way.
public struct ProjectionCode: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        /// Relative to the projections folder: `NAME.lua` for the script, `lib/M.lua` for a module.
        public var path: String
        public var text: String

        public init(path: String, text: String) {
            self.path = path
            self.text = text
        }

        /// SHA-256 (hex) of the file's UTF-8 bytes: its key in `audit_code`.
        public var sha256: String { Hex.encode(Array(SHA256.hash(data: Array(text.utf8)))) }

        /// A module's name (`lib/money.lua` → `money`), as `require` names it.
        var moduleName: String { String((path as NSString).lastPathComponent.dropLast(4)) }
    }

    /// The projection's name (its file's name without `.lua`).
    public var name: String
    public var script: File
    /// Sorted by path.
    public var modules: [File]

    public init(name: String, script: File, modules: [File]) {
        self.name = name
        self.script = script
        self.modules = modules.sorted { $0.path < $1.path }
    }

    /// The script first, then the modules.
    public var files: [File] { [script] + modules }

    /// SHA-256 (hex) over the script and every module (their names and texts, not their
    /// paths): any change to the code makes the next replay rebuild.
    public var hash: String {
        var hasher = SHA256()
        hasher.update(data: Data("audit.projection.v1\0".utf8))
        for part in [script.text] + modules.flatMap({ [$0.moduleName, $0.text] }) {
            hasher.update(data: Data(String(part.utf8.count).utf8 + [0]))
            hasher.update(data: Data(part.utf8))
        }
        return Hex.encode(Array(hasher.finalize()))
    }

    /// Reads `file` and every `*.lua` of `libDirectory` (sorted).
    ///
    /// - Complexity: reads the files and nothing else (no VM is made), so comparing a
    ///   folder's code with a table's costs a file read and a hash.
    /// - Throws: `ProjectionError` when a file cannot be read.
    public static func read(file: String, libDirectory: String?) throws -> ProjectionCode {
        let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ProjectionError(projection: name, message: "cannot read \(file): \(error.localizedDescription)")
        }
        var modules: [File] = []
        if let libDirectory, let entries = try? FileManager.default.contentsOfDirectory(atPath: libDirectory) {
            for entry in entries.sorted() where entry.hasSuffix(".lua") {
                let path = libDirectory + "/" + entry
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw ProjectionError(projection: name, message: "cannot read \(path)")
                }
                modules.append(File(path: "lib/" + entry, text: text))
            }
        }
        return ProjectionCode(name: name, script: File(path: name + ".lua", text: text), modules: modules)
    }
}
