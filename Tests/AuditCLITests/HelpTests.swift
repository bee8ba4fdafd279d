@testable import AuditCLI
import ArgumentParser
import Foundation
import Testing

/// `--help` reads cleanly at 80 columns: paragraphs wrapped once, by ArgumentParser;
/// the usage line wrapped between options; each default said once.
@Suite("Help texts")
struct HelpTests {
    /// Every command's path from the root (`[]`, `["state"]`, `["schedule", "run"]` …)
    /// and its type.
    static func commands(_ type: any ParsableCommand.Type = AuditCommand.self, path: [String] = []) -> [(path: [String], type: any ParsableCommand.Type)] {
        [(path, type)] + type.configuration.subcommands.flatMap { commands($0, path: path + [$0._commandName]) }
    }

    @Test("every --help fits 80 columns")
    func eightyColumns() throws {
        let dir = TempDir()
        for (path, _) in Self.commands() {
            let result = try audit(path + ["--help"], in: dir.path, environment: ["COLUMNS": "80"])
            #expect(result.status == 0)
            for line in result.stdout.split(separator: "\n") {
                #expect(line.count <= 80, "audit \(path.joined(separator: " ")) --help: \(line)")
            }
            #expect(result.stdout.contains("USAGE: audit"))
        }
    }

    @Test("usage lines in errors are wrapped too, continuing under the first option")
    func usageInErrors() throws {
        let dir = TempDir()
        // append has few enough options for ArgumentParser to list them all (past 12 it
        // prints `<options>`).
        let result = try audit(["append", "--stream"], in: dir.path, environment: ["COLUMNS": "80"])
        #expect(result.status == 64)
        let usage = result.stderr.split(separator: "\n").drop { !$0.hasPrefix("Usage: audit append") }
        #expect(usage.count >= 3)
        #expect(usage.prefix(3).allSatisfy { $0.count <= 80 })
        #expect(usage.dropFirst().first?.hasPrefix(String(repeating: " ", count: "Usage: audit append ".count) + "--data") == true)
    }

    @Test("discussions are paragraphs, not hand-wrapped lines; examples fit")
    func paragraphs() {
        for (path, type) in Self.commands() {
            let lines = type.configuration.discussion.split(separator: "\n", omittingEmptySubsequences: false)
            for (line, next) in zip(lines, lines.dropFirst()) {
                let prose = { (l: Substring) in !l.isEmpty && !l.hasPrefix(" ") && !l.hasPrefix("Example") }
                #expect(!(prose(line) && prose(next)), "audit \(path.joined(separator: " ")): a hand-wrapped line: \(line)")
            }
            for line in lines where line.hasPrefix("  ") {
                #expect(line.count <= 78, "audit \(path.joined(separator: " ")): an example past 78 columns: \(line)")
            }
        }
    }

    @Test("each option says its default once; verify-export's --db does not claim $AUDIT_DB")
    func defaults() throws {
        for (path, type) in Self.commands() {
            let help = AuditCommand.helpMessage(for: type, columns: 1000)
            for line in help.split(separator: "\n") {
                // ArgumentParser adds "(default: …)"; a help text that says it too says it twice.
                let said = line.components(separatedBy: "(default").count - 1
                #expect(said <= 1, "audit \(path.joined(separator: " ")): \(line)")
            }
        }
        let verifyExport = AuditCommand.helpMessage(for: AuditCommand.VerifyExport.self, columns: 1000)
        #expect(!verifyExport.contains("else ./audit.db"))
        #expect(verifyExport.contains("$AUDIT_DB and ./audit.db are not read"))
        // Its text uses --db: the usage and the options list it.
        #expect(verifyExport.contains("[--db <path>]"), "\(verifyExport)")
        #expect(verifyExport.contains("  --db <path>  "), "\(verifyExport)")
    }

    @Test("shell completion offers the workspace's projection and saved-query names")
    func completion() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try FileManager.default.createDirectory(atPath: dir.path + "/other", withIntermediateDirectories: true)
        try "return { on = {} }".write(toFile: dir.path + "/other/fines.lua", atomically: true, encoding: .utf8)
        func complete(_ command: String, _ argument: String, _ words: [String]) throws -> String {
            try audit(["---completion", command, "--", argument, String(words.count - 1), "0"] + words, in: dir.path).stdout
        }
        #expect(try complete("state", "positional@0", ["audit", "state", ""]) == "stream_activity\n")
        #expect(try complete("explain", "positional@0", ["audit", "explain", "--projections", "other", ""]) == "fines\n")
        #expect(try complete("verify", "positional@0", ["audit", "verify", "--projections-dir", "other", "--projections", ""]) == "fines\n")
        #expect(try complete("query", "positional@0", ["audit", "query", ""]) == "busiest_streams\n")
        #expect(try complete("export", "--query", ["audit", "export", "--query", ""]) == "busiest_streams\n")
    }
}
