import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct VerifyExport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-export",
            abstract: "Check exports: every file's hash, the signature, the rows, the chain between runs, and — with --db — the store.",
            discussion: """
                DIR is an export directory, or a folder of run directories (NAME-000001 …), which are \
                then checked one by one and as a chain: each manifest names the previous run's, and \
                each incremental run starts right after the previous one ended.

                --public-key is required: the key you were given by whoever signs the exports. \
                --trust-embedded-key checks each signature with the key its manifest names instead, \
                which proves nothing about who signed. An unsigned export fails unless --allow-unsigned.

                With --db PATH, also compares the chain head and the exact rows selected with that \
                database. Only then: $AUDIT_DB and ./audit.db are not read, so that the check never \
                depends on a local file.

                Prints one JSON line per export checked; exits 4 naming every mismatch.

                Examples:
                  audit verify-export exports/trail/trail-000003 --public-key export.key.pub
                  audit verify-export exports/trail --public-key BASE64KEY --db audit.db
                """)

        @Argument(help: ArgumentHelp("Export directories, or folders of them.", valueName: "dir")) var directories: [String]
        @Option(help: ArgumentHelp("The trusted Ed25519 public key: base64 (as keygen prints it), hex, or a file holding it.", valueName: "key")) var publicKey: String?
        @Flag(help: "Without --public-key: check each signature with the key its own manifest names (proves nothing about who signed).")
        var trustEmbeddedKey = false
        @Flag(help: "Accept exports that are not signed (they prove nothing about who made them).") var allowUnsigned = false
        /// `--db PATH`: also compare with that database. Only when given explicitly ($AUDIT_DB
        /// and ./audit.db are not used), so an auditor's check never depends on a local file.
        /// Hidden from the options, whose --db says "default: $AUDIT_DB": the discussion says
        /// what it means here.
        @OptionGroup(visibility: .hidden) var global: GlobalOptions

        func validate() throws {
            if directories.isEmpty { throw ValidationError("give at least one export directory") }
            if publicKey == nil, !trustEmbeddedKey {
                throw ValidationError(
                    "give --public-key KEY, the key you were given by whoever signs the exports (or --trust-embedded-key to check each signature with the key its manifest names, which proves nothing about who signed)")
            }
            if publicKey != nil, trustEmbeddedKey { throw ValidationError("--public-key and --trust-embedded-key exclude each other") }
        }

        func run() throws {
            let trust = try publicKey.map { SignatureTrust.publicKey(try PublicKey(argument: $0)) } ?? .embeddedKey
            let store = try global.db.map { try EventStore(path: $0, access: .readOnly) }
            var verified: [ExportVerification] = []
            var failures: [String] = []
            for group in try expand(directories) {
                var runs: [ExportVerification] = []
                for directory in group.directories {
                    do {
                        runs.append(try ExportVerifier.verify(directory: directory, trust: trust, allowUnsigned: allowUnsigned, store: store))
                    } catch let failure as ExportVerificationFailure {
                        failures.append(failure.description)
                    }
                }
                if let folder = group.folder, !runs.isEmpty {
                    let series = try ExportSeries.check(&runs, folder: folder, store: store)
                    if !series.isEmpty { failures.append("the runs in \(folder) do not match the log:\n" + series.map { "  - " + $0 }.joined(separator: "\n")) }
                }
                verified += runs
            }
            var out = Output()
            for v in verified { try out.line(v.json) }
            let chain = ExportChain.problems(verified)
            if !chain.isEmpty { failures.append("the chain of runs does not hold:\n" + chain.map { "  - " + $0 }.joined(separator: "\n")) }
            for failure in failures { warn("audit: \(failure)") }
            try out.flush()
            if !failures.isEmpty { throw ExitCode(ExitCodes.code(for: .integrity)) }
        }

        /// Each argument as an export directory, or — a folder of runs — the run
        /// directories inside it, which are then also checked as series.
        private func expand(_ paths: [String]) throws -> [(folder: String?, directories: [String])] {
            var result: [(folder: String?, directories: [String])] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw ExportError("\(path): no such export directory", category: .invalidInput)
                }
                if FileManager.default.fileExists(atPath: path + "/manifest.json") {
                    result.append((nil, [path]))
                    continue
                }
                let runs = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { entry in
                    !entry.hasPrefix(".") && FileManager.default.fileExists(atPath: path + "/" + entry + "/manifest.json")
                }.sorted()
                // A folder with no run in it is checked as one export, which reports the missing manifest.
                result.append(runs.isEmpty ? (nil, [path]) : (path, runs.map { path + "/" + $0 }))
            }
            return result
        }
    }
}
