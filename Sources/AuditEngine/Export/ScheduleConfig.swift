import Foundation
import TOMLKit

/// One export declared in the workspace file, `audit.toml`.
public struct ScheduledExport: Sendable, Equatable {
    public enum What: Sendable, Equatable {
        case events(EventExportSelection)
        /// A saved query, `queries/NAME.sql`, read when the export runs.
        case query(name: String, parameters: [String: String])
    }

    /// How long run directories are kept: the newest N runs, or those younger than N days.
    public enum Retention: Sendable, Equatable {
        case runs(Int)
        case days(Int)
    }

    public var name: String
    public var what: What
    public var format: ExportFormat
    /// The folder that gets one directory per run, `NAME-000001`, `NAME-000002`, …
    public var destination: String
    public var schedule: CronSchedule
    public var incremental: Bool
    public var retention: Retention?
    /// The signing key file, if the manifests are signed.
    public var signingKey: String?
}

/// The workspace file: `audit.toml`.
///
/// ```toml
/// signing_key = "keys/export.key"      # optional: sign every manifest with it
/// timezone = "Europe/Berlin"           # optional: the default for every schedule (else UTC)
///
/// [exports.trail]
/// what = "events"                      # or "query:NAME" for queries/NAME.sql
/// incremental = true                   # events only: each run continues from the last
/// format = "jsonl"                     # or "csv"
/// destination = "exports/trail"        # one directory per run: trail-000001, …
/// schedule = "0 2 * * *"               # 5-field cron
/// retention = "90d"                    # or a number of runs, e.g. 30; default: keep all
/// ```
///
/// Relative paths are relative to the folder the file is in.
public struct ScheduleConfig: Sendable, Equatable {
    public var exports: [ScheduledExport]
    /// Where saved queries are read from (`queries = "…"`, default `queries`).
    public var queriesDirectory: String
    public var file: String

    /// Reads and checks a workspace file.
    /// - Throws: `ScheduleConfigError` (invalid input, exit 65) naming the file, the
    ///   export and the key, or the line and column of a TOML syntax error.
    public static func load(file: String) throws -> ScheduleConfig {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ScheduleConfigError(file: file, message: "cannot read it (create it, or pass --config; see docs/exports.md)", category: .failure)
        }
        return try parse(text, file: file)
    }

    public static func parse(_ text: String, file: String) throws -> ScheduleConfig {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ScheduleConfigError(
                file: "\(file):\(error.source.begin.line):\(error.source.begin.column)", message: error.description)
        }
        // Every key known and of its type first (WorkspaceKeys): a mistyped value is an
        // error naming it, never a silent default.
        try WorkspaceKeys.check(table, text: text, file: file)
        let root = TOMLValues.json(table)
        let base = URL(fileURLWithPath: file).deletingLastPathComponent().path
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : base + "/" + path }
        func fail(_ message: String) -> ScheduleConfigError { ScheduleConfigError(file: file, message: message) }
        let defaultKey = root["signing_key"]?.stringValue
        let defaultZone = root["timezone"]?.stringValue ?? "UTC"
        var exports: [ScheduledExport] = []
        guard case .object(let declared)? = root["exports"] ?? .object([]) else { throw fail("\"exports\" must be tables: [exports.NAME]") }
        for entry in declared {
            exports.append(try exportSpec(name: entry.key, entry.value, defaultKey: defaultKey, defaultZone: defaultZone, resolve: resolve, fail: fail))
        }
        return ScheduleConfig(exports: exports, queriesDirectory: resolve(root["queries"]?.stringValue ?? "queries"), file: file)
    }

    private static func exportSpec(
        name: String, _ value: JSONValue, defaultKey: String?, defaultZone: String, resolve: (String) -> String,
        fail: (String) -> ScheduleConfigError
    ) throws -> ScheduledExport {
        func bad(_ message: String) -> ScheduleConfigError { fail("[exports.\(name)]: \(message)") }
        guard ExportRequest.isValidName(name) else { throw bad("an export's name may use letters, digits, '.', '_' and '-'") }
        func string(_ key: String) throws -> String? {
            switch value[key] {
            case nil: return nil
            case .string(let s)?: return s
            default: throw bad("\"\(key)\" must be a string")
            }
        }
        guard let what = try string("what") else { throw bad("\"what\" is required: \"events\" or \"query:NAME\"") }
        guard let destination = try string("destination") else { throw bad("\"destination\" is required: the folder that gets one directory per run") }
        guard let cron = try string("schedule") else { throw bad("\"schedule\" is required: 5-field cron, e.g. \"0 2 * * *\"") }
        let schedule: CronSchedule
        do {
            schedule = try CronSchedule(cron, timeZone: try string("timezone") ?? defaultZone)
        } catch let error as CronError {
            throw bad(error.description)
        }
        let formatText = try string("format") ?? "jsonl"
        guard let format = ExportFormat(rawValue: formatText) else { throw bad("\"format\" must be \"jsonl\" or \"csv\", not \"\(formatText)\"") }
        var incremental = false
        switch value["incremental"] {
        case nil: break
        case .bool(let b)?: incremental = b
        default: throw bad("\"incremental\" must be true or false")
        }
        let kind: ScheduledExport.What
        if what == "events" {
            kind = .events(EventExportSelection(stream: try string("stream"), type: try string("type")))
        } else if what.hasPrefix("query:"), what.count > 6 {
            if incremental { throw bad("a query export cannot be incremental (its result is a whole table); remove \"incremental\"") }
            if value["stream"] != nil || value["type"] != nil { throw bad("\"stream\" and \"type\" filter events exports; a query selects in its SQL") }
            var parameters: [String: String] = [:]
            if case .object(let params)? = value["params"] {
                for p in params {
                    switch p.value {
                    case .string(let s): parameters[p.key] = s
                    case .int(let n): parameters[p.key] = String(n)
                    default: throw bad("params.\(p.key) must be a string or an integer")
                    }
                }
            } else if value["params"] != nil {
                throw bad("\"params\" must be a table, e.g. params = { year = \"2005\" }")
            }
            let query = String(what.dropFirst(6))
            guard SavedQuery.isValidName(query) else { throw bad("\"what\": " + SavedQuery.invalidNameMessage(query)) }
            kind = .query(name: query, parameters: parameters)
        } else {
            throw bad("\"what\" must be \"events\" or \"query:NAME\", not \"\(what)\"")
        }
        var retention: ScheduledExport.Retention?
        switch value["retention"] {
        case nil: break
        case .int(let n)? where n >= 1: retention = .runs(Int(n))
        case .string(let s)? where s.hasSuffix("d") && Int(s.dropLast()).map({ $0 >= 1 }) == true: retention = .days(Int(s.dropLast())!)
        default: throw bad("\"retention\" must be a number of runs (30) or of days (\"90d\")")
        }
        return ScheduledExport(
            name: name, what: kind, format: format, destination: resolve(destination), schedule: schedule, incremental: incremental,
            retention: retention, signingKey: (try string("signing_key") ?? defaultKey).map(resolve))
    }
}

/// A workspace file that cannot be used.
public struct ScheduleConfigError: AuditFailure, Equatable {
    public var file: String
    public var message: String
    public var category: FailureCategory = .invalidInput
    public var description: String { "\(file): \(message)" }
}

/// TOMLKit's values as `JSONValue`, so that the rest of the engine reads one value type.
private enum TOMLValues {
    static func json(_ table: TOMLTable) -> JSONValue {
        .object(table.keys.sorted().compactMap { key in table[key].map { JSONMember(key, json($0)) } })
    }

    static func json(_ value: TOMLValueConvertible) -> JSONValue {
        switch value.type {
        case .table: return value.table.map(json) ?? .null
        case .array: return .array(value.array.map { Array($0).map(json) } ?? [])
        case .string: return value.string.map(JSONValue.string) ?? .null
        case .int: return value.int.map { .int(Int64($0)) } ?? .null
        case .double: return value.double.map(JSONValue.double) ?? .null
        case .bool: return value.bool.map(JSONValue.bool) ?? .null
        default: return .string(value.debugDescription)
        }
    }
}
