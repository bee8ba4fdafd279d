import Foundation
import Testing

@testable import AuditEngine

@Suite("The workspace file's keys and types")
struct WorkspaceFileTests {
    static let export = """
        [exports.trail]
        what = "events"
        destination = "exports/trail"
        schedule = "0 2 * * *"

        """

    func load(_ text: String) throws -> ScheduleConfig {
        try ScheduleConfig.parse(text, file: "/w/audit.toml")
    }

    func failure(_ text: String) -> ScheduleConfigError? {
        do {
            _ = try load(text)
            return nil
        } catch {
            return error as? ScheduleConfigError
        }
    }

    struct Mistyped: CustomStringConvertible, Sendable {
        var toml: String
        /// What the message must say, and the line it must name.
        var says: String
        var line: Int
        var description: String { says }
    }

    /// One wrong type for every key of every table (and both shapes of retention,
    /// params' values, TOML dates), each named with the type it wants.
    @Test("a wrongly typed value is an error naming the key, the type it wants and its line", arguments: [
        Mistyped(toml: "signing_key = 5\n" + export, says: #""signing_key" must be a string, such as "keys/export.key", not an integer (5)"#, line: 1),
        Mistyped(toml: "timezone = 5\n" + export, says: #""timezone" must be a string, such as "Europe/Berlin", not an integer (5)"#, line: 1),
        Mistyped(toml: "queries = true\n" + export, says: #""queries" must be a string"#, line: 1),
        Mistyped(toml: "exports = 5\n", says: #""exports" must be tables, one per export: [exports.NAME], not an integer"#, line: 1),
        Mistyped(toml: "[exports]\ntrail = \"x\"\n", says: #"[exports]: "exports.trail" must be a table"#, line: 2),
        Mistyped(toml: "[[exports.trail]]\nwhat = \"events\"\n", says: #""exports.trail" must be a table, [exports.trail], not an array"#, line: 1),
        Mistyped(toml: "[exports.trail]\nwhat = 1\n", says: #"[exports.trail]: "what" must be a string"#, line: 2),
        Mistyped(toml: export + "incremental = \"yes\"\n", says: #""incremental" must be true or false, not a string ("yes")"#, line: 5),
        Mistyped(toml: export + "format = 1\n", says: #""format" must be a string"#, line: 5),
        Mistyped(toml: "[exports.trail]\nwhat = \"events\"\ndestination = 1979-05-27T07:32:00Z\n", says: #""destination" must be a string, such as "exports/trail", not a date-time"#, line: 3),
        Mistyped(toml: export + "timezone = 1\n", says: #""timezone" must be a string"#, line: 5),
        Mistyped(toml: export + "retention = 1.5\n", says: #""retention" must be a number of runs (30) or of days ("90d"), not a floating-point number (1.5)"#, line: 5),
        Mistyped(toml: export + "retention = true\n", says: #""retention" must be a number of runs"#, line: 5),
        Mistyped(toml: export + "signing_key = [\"a\"]\n", says: #""signing_key" must be a string, such as "keys/export.key", not an array"#, line: 5),
        Mistyped(toml: export + "stream = 1\n", says: #""stream" must be a string"#, line: 5),
        Mistyped(toml: export + "type = 2024-01-01\n", says: #""type" must be a string, such as "Payment", not a date"#, line: 5),
        Mistyped(toml: export + "params = \"x\"\n", says: #""params" must be a table of strings or integers"#, line: 5),
        Mistyped(toml: export + "params = { year = 1.5 }\n", says: "params.year must be a string or an integer, not a floating-point number", line: 5),
        Mistyped(toml: "[exports.trail]\nwhat = \"events\"\nschedule = 5\n", says: #""schedule" must be a string"#, line: 3),
    ])
    func mistyped(c: Mistyped) throws {
        let error = try #require(failure(c.toml))
        #expect(error.description.contains(c.says), "\(error)")
        #expect(error.file == "/w/audit.toml:\(c.line)" && error.category == .invalidInput, "\(error)")
    }

    @Test("a top-level signing key or time zone of the right type is used; a bad zone is an error even with no export")
    func topLevel() throws {
        let config = try load("signing_key = \"keys/k\"\ntimezone = \"Europe/Berlin\"\n" + Self.export)
        #expect(config.exports[0].signingKey == "/w/keys/k" && config.exports[0].schedule.timeZoneName == "Europe/Berlin")
        let zone = try #require(failure("timezone = \"Mars/Base\"\n"))
        #expect(zone.description == #"/w/audit.toml:1: unknown time zone "Mars/Base" (use an IANA name such as UTC or Europe/Berlin)"#)
    }

    @Test("an unknown key is an error naming the closest known key", arguments: [
        ("timezon = \"UTC\"\n", #"unknown key "timezon" (did you mean "timezone"? known at the top: exports, queries, signing_key, timezone)"#, 1),
        ("signing-key = \"k\"\n", #"did you mean "signing_key"?"#, 1),
        (export + "retension = 3\n", #"[exports.trail]: unknown key "retension" (did you mean "retention"? known: destination, format,"#, 5),
        (export + "colour = \"red\"\n", #"unknown key "colour" (known: destination,"#, 5),
    ])
    func unknownKey(toml: String, says: String, line: Int) throws {
        let error = try #require(failure(toml))
        #expect(error.description.contains(says) && error.file == "/w/audit.toml:\(line)", "\(error)")
    }
}
