import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct VerifyExport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-export",
            abstract: "Check exports: every file's hash, the signature, the rows, the chain between runs, and — with --db — the store.",
            discussion: """
                DIR is an export directory, or a folder of run directories (NAME-000001 …), which are
                then checked one by one and as a chain: each manifest names the previous run's, and
                each incremental run starts right after the previous one ended.
                With --db, also compares the chain head and the exact rows selected with that database
                (only when --db is given: $AUDIT_DB is not used here).
                Prints one JSON line per export checked; exits 4 naming every mismatch.
                Examples:
                  audit verify-export exports/trail/trail-000003 --public-key keys/export.key.pub
                  audit verify-export exports/trail --public-key BASE64KEY --db audit.db
                """)

        @Argument(help: ArgumentHelp("Export directories, or folders of them.", valueName: "dir")) var directories: [String]
        @Option(help: ArgumentHelp("The trusted Ed25519 public key: base64 (as keygen prints it), hex, or a file holding it.", valueName: "key")) var publicKey: String?
        /// `--db PATH`: also compare with that database. Only when given explicitly ($AUDIT_DB
        /// and ./audit.db are not used), so an auditor's check never depends on a local file.
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if directories.isEmpty { throw ValidationError("give at least one export directory") }
        }

        func run() throws {
            let key = try publicKey.map { try PublicKey(argument: $0) }
            let store = try global.db.map { try EventStore(path: $0, access: .readOnly) }
            var verified: [ExportVerification] = []
            var failures: [String] = []
            for directory in try expand(directories) {
                do {
                    verified.append(try ExportVerifier.verify(directory: directory, publicKey: key, store: store))
                } catch let failure as ExportVerificationFailure {
                    failures.append(failure.description)
                }
            }
            var out = Output()
            for v in verified { out.line(v.json) }
            out.flush()
            let chain = ExportChain.problems(verified)
            if !chain.isEmpty { failures.append("the chain of runs does not hold:\n" + chain.map { "  - " + $0 }.joined(separator: "\n")) }
            if !failures.isEmpty {
                for failure in failures { warn("audit: \(failure)") }
                throw ExitCode(ExitCodes.code(for: .integrity))
            }
        }

        /// Each argument, or the run directories inside it when it is a folder of runs.
        private func expand(_ paths: [String]) throws -> [String] {
            var result: [String] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw ExportError("\(path): no such export directory", category: .invalidInput)
                }
                if FileManager.default.fileExists(atPath: path + "/manifest.json") {
                    result.append(path)
                    continue
                }
                let runs = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { entry in
                    !entry.hasPrefix(".") && FileManager.default.fileExists(atPath: path + "/" + entry + "/manifest.json")
                }.sorted()
                // A folder with no run in it is checked as one export, which reports the missing manifest.
                result += runs.isEmpty ? [path] : runs.map { path + "/" + $0 }
            }
            return result
        }
    }
}
