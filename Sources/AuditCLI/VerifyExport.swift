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
                each incremental run starts right after the previous one ended. A folder is checked \
                all the way down: every directory in it is an export (one without manifest.json is \
                reported: it is not a complete export), or — when it holds directories and is not \
                named as a run — a folder of exports, checked the same way. A file beside the \
                exports is reported too; only names beginning with "." (an interrupted export's \
                .NAME.partial-… directory) are passed over.

                --public-key is required: the key you were given by whoever signs the exports. \
                --trust-embedded-key checks each signature with the key its manifest names instead, \
                which proves nothing about who signed. An unsigned export fails unless --allow-unsigned.

                With --db PATH, also compares the chain head and the exact rows selected with that \
                database, and each folder's runs with the runs the log recorded. Only then: $AUDIT_DB \
                and ./audit.db are not read, so that the check never depends on a local file.

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
        @OptionGroup var database: Database
        /// `audit --db PATH verify-export …`: the root's --db, which also takes the value
        /// of a --db given after the command name (the root's options are parsed first).
        @ParentCommand var root: AuditCommand

        /// The database to compare with, only when given.
        var db: String? { database.db ?? root.global.db }

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
            // Opened whatever its schema: the comparison checks the schema itself and names every problem.
            let store = try db.map { try EventStore(path: $0, access: .readOnly, checkingSchema: false) }
            var verified: [ExportVerification] = []
            var unverified: [UnverifiedRun] = []
            let (groups, strays) = try expand(directories)
            var failures = strays.map(\.description)
            for group in groups {
                var runs: [ExportVerification] = []
                var failed: [UnverifiedRun] = []
                for directory in group.directories {
                    do {
                        runs.append(try ExportVerifier.verify(directory: directory, trust: trust, allowUnsigned: allowUnsigned, store: store))
                    } catch let failure as ExportVerificationFailure {
                        failures.append(failure.description)
                        if let claim = ExportSeries.claim(directory) {
                            failed.append(UnverifiedRun(
                                name: claim.name, run: claim.run, directory: directory,
                                hasManifest: FileManager.default.fileExists(atPath: directory + "/manifest.json")))
                        }
                    }
                }
                if let folder = group.folder, !runs.isEmpty {
                    let series = try ExportSeries.check(&runs, folder: folder, store: store, unverified: failed)
                    if !series.isEmpty { failures.append("the runs in \(folder) do not match the log:\n" + series.map { "  - " + $0 }.joined(separator: "\n")) }
                }
                verified += runs
                unverified += failed
            }
            var out = Output()
            for v in verified { try out.line(v.json) }
            let chain = ExportChain.problems(verified, unverified: unverified)
            if !chain.isEmpty { failures.append("the chain of runs does not hold:\n" + chain.map { "  - " + $0 }.joined(separator: "\n")) }
            for failure in failures { warn("audit: \(failure)") }
            try out.flush()
            if !failures.isEmpty { throw ExitCode(ExitCodes.code(for: .integrity)) }
        }

        /// Each argument as an export directory, or — a folder — the export directories
        /// in it, grouped by the folder that holds them (each group is then also checked as
        /// a series), and the files found beside them (each a problem).
        ///
        /// In a folder, every entry whose name does not begin with "." is looked at, and
        /// none is passed over in silence: a directory with a manifest.json, named as a run
        /// (`NAME-000001`), or holding no directory is an export (one without a manifest is
        /// then reported as not a complete export); another directory is a folder, walked
        /// the same way; anything else is reported as not an export directory.
        private func expand(_ paths: [String]) throws -> (groups: [(folder: String?, directories: [String])], strays: [ExportVerificationFailure]) {
            var groups: [(folder: String?, directories: [String])] = []
            var strays: [ExportVerificationFailure] = []
            let files = FileManager.default
            func isDirectory(_ path: String) -> Bool {
                var isDirectory: ObjCBool = false
                return files.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            }
            func entries(_ folder: String) -> [String] {
                ((try? files.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            }
            func isExport(_ path: String) -> Bool {
                files.fileExists(atPath: path + "/manifest.json") || ExportSeries.claim(path) != nil
                    || !entries(path).contains { isDirectory(path + "/" + $0) }
            }
            for path in paths {
                guard isDirectory(path) else {
                    throw ExportError("\(path): no such export directory", category: .invalidInput)
                }
                if isExport(path) {
                    groups.append((nil, [path]))
                    continue
                }
                // A link back up the tree is walked once.
                var walked: Set<String> = []
                func walk(_ folder: String) {
                    guard walked.insert(URL(fileURLWithPath: folder).resolvingSymlinksInPath().path).inserted else { return }
                    var exports: [String] = []
                    var folders: [String] = []
                    for entry in entries(folder) {
                        let child = folder + "/" + entry
                        if !isDirectory(child) {
                            strays.append(ExportVerificationFailure(
                                directory: child, problems: ["not a directory: a folder of exports holds only export directories (and folders of them)"]))
                        } else if isExport(child) {
                            exports.append(child)
                        } else {
                            folders.append(child)
                        }
                    }
                    if !exports.isEmpty { groups.append((folder, exports)) }
                    folders.forEach(walk)
                }
                walk(path)
            }
            return (groups, strays)
        }
    }
}

extension AuditCommand.VerifyExport {
    /// verify-export's `--db`, listed in its usage and options with what it means here
    /// (GlobalOptions' says "default: $AUDIT_DB", which verify-export never reads).
    struct Database: ParsableArguments {
        @Option(
            name: .long,
            help: ArgumentHelp(
                "Also compare with this database: its chain head, the rows, the runs it recorded (only when given: $AUDIT_DB is not used).",
                valueName: "path"))
        var db: String?
    }
}
