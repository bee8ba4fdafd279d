@testable import AuditCLI
import ArgumentParser
import Foundation
import Testing

/// Every time option of every command gives the engine's reason and the accepted
/// forms, in the same words; selecting options exit 64, event content 65 (DECISIONS 18).
@Suite("Time arguments")
struct TimeArgumentTests {
    /// Each command and time option, with what else the command needs.
    static let selectingOptions: [(arguments: [String], option: String)] = [
        (["events"], "--as-of"), (["events"], "--known-at"),
        (["state", "stream_activity"], "--as-of"), (["state", "stream_activity"], "--known-at"),
        (["explain", "stream_activity", "S1"], "--as-of"), (["explain", "stream_activity", "S1"], "--known-at"),
        (["query", "busiest_streams", "--param", "limit=1"], "--as-of"), (["query", "--sql", "SELECT 1"], "--known-at"),
        (["export", "--out", "x"], "--as-of"), (["export", "--out", "x"], "--known-at"),
    ]

    @Test("a selecting option: exit 64, the reason and the accepted forms", arguments: selectingOptions)
    func selecting(arguments: [String], option: String) throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let result = try audit(arguments + [option, "2005-12-31T10:00"], in: dir.path)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix(
            "Error: The value '2005-12-31T10:00' is invalid for '\(option) <time>': seconds and a zone are required: HH:MM:SS, then Z or ±HH:MM; accepted: \(TimeArgument.selectingForms)\n"),
            "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
    }

    @Test("--occurred-at: exit 65 and the same words; nothing is appended")
    func eventTime() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let result = try audit(["append", "--stream", "s", "--type", "T", "--data", "{}", "--occurred-at", "2005-12-31T10:00"], in: dir.path)
        #expect(result.status == 65)
        #expect(result.stderr == "audit: The value '2005-12-31T10:00' is invalid for '--occurred-at <time>': seconds and a zone are required: HH:MM:SS, then Z or ±HH:MM; accepted: \(TimeArgument.eventForms)\n")
        #expect(try audit(["verify"], in: dir.path).stdout.contains(#""events":0"#))
    }

    static let refused: [(value: String, reason: String)] = [
        ("2005-12-31T10:00:00", "a zone is required: Z or ±HH:MM"),
        ("2005-12-31T10:00:00+0200", "zone offset must be ±HH:MM"),
        ("2005-12-31T10:00Z", "seconds are required: HH:MM:SS"),
        ("2005-02-29", "day 29 out of range"),
        ("2005/12/31", "date must be YYYY-MM-DD"),
        ("2005-12-31Z", "time must be HH:MM:SS"),
        ("yesterday", "date must be YYYY-MM-DD (relative times such as now, yesterday or -7d are not accepted)"),
        ("-7d", "date must be YYYY-MM-DD (relative times such as now, yesterday or -7d are not accepted)"),
        ("1136000000", "date must be YYYY-MM-DD (a number such as epoch seconds or 20240630 is not a time here)"),
        ("", "date must be YYYY-MM-DD"),
    ]

    @Test("each refused form gives its reason", arguments: refused)
    func reasons(value: String, reason: String) throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let result = try audit(["events", "--as-of", value], in: dir.path)
        #expect(result.status == 64)
        #expect(result.stderr.contains("'--as-of <time>': \(reason); accepted: "), "\(result.stderr)")
    }

    @Test("accepted forms select as documented")
    func accepted() throws {
        #expect(try TimeArgument.selecting("2005-12-31").description == "2005-12-31T23:59:59.999Z")
        #expect(try TimeArgument.selecting("2005-12-31T10:00:00+02:00").description == "2005-12-31T08:00:00.000Z")
        #expect(try TimeArgument.selecting("2005-12-31 10:00:00Z").description == "2005-12-31T10:00:00.000Z")
        #expect(throws: TimeArgument.InvalidEventTime.self) { try TimeArgument.eventTime("2005-12-31", option: "--occurred-at") }
    }

    /// Every command and subcommand.
    static func allCommands(_ root: any ParsableCommand.Type = AuditCommand.self) -> [any ParsableCommand.Type] {
        [root] + root.configuration.subcommands.flatMap { allCommands($0) }
    }

    @Test("--help of every time option of every command lists the accepted forms")
    func help() throws {
        var checked = 0
        for command in Self.allCommands() {
            // Wide, so that no line is wrapped; only the options, not the usage line.
            let help = AuditCommand.helpMessage(for: command, columns: 1000)
            guard let options = help.range(of: "OPTIONS:") else { continue }
            let lines = help[options.upperBound...].split(separator: "\n")
            for (i, label) in lines.enumerated() where label.contains("<time>") {
                // A long option's help starts on the next line.
                let line = label.trimmingCharacters(in: .whitespaces).hasSuffix("<time>") && i + 1 < lines.count
                    ? label + lines[i + 1] : label
                let forms = line.contains("--occurred-at") ? TimeArgument.eventForms : TimeArgument.selectingForms
                #expect(line.contains(forms), "\(command): \(line)")
                checked += 1
            }
        }
        #expect(checked >= 11)  // events, state, explain, query, export: 2 each; append: 1
    }
}
