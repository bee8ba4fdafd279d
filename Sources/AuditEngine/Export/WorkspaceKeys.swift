import Foundation
import TOMLKit

/// Every key the workspace file (`audit.toml`) may hold and the type it must have,
/// checked before any value is read, so that a mistyped value (`signing_key = 5`) is an
/// error naming the key and the type it wants, never a silent default, and an unknown
/// key (a typo) is an error naming the closest known one.
///
/// What the values mean (a known time zone, a cron expression, `"events"` or
/// `"query:NAME"`) is checked where they are read, in `ScheduleConfig.parse`.
enum WorkspaceKeys {
    enum Expected {
        case string(example: String)
        case bool
        /// A number of runs (an integer) or of days (a string such as "90d").
        case runsOrDays
        /// `params = { name = "value" }`: a table of strings and integers.
        case parameters
        /// `[exports.NAME]` tables.
        case exports

        var text: String {
            switch self {
            case .string(let example): return "a string, such as \(example)"
            case .bool: return "true or false"
            case .runsOrDays: return "a number of runs (30) or of days (\"90d\")"
            case .parameters: return "a table of strings or integers, such as params = { year = \"2005\" }"
            case .exports: return "tables, one per export: [exports.NAME]"
            }
        }

        func accepts(_ type: TOMLType) -> Bool {
            switch self {
            case .string: return type == .string
            case .bool: return type == .bool
            case .runsOrDays: return type == .int || type == .string
            case .parameters, .exports: return type == .table
            }
        }
    }

    static let top: [String: Expected] = [
        "signing_key": .string(example: "\"keys/export.key\""), "timezone": .string(example: "\"Europe/Berlin\""),
        "queries": .string(example: "\"queries\""), "exports": .exports,
    ]

    static let export: [String: Expected] = [
        "what": .string(example: "\"events\" or \"query:NAME\""), "incremental": .bool, "format": .string(example: "\"jsonl\" or \"csv\""),
        "destination": .string(example: "\"exports/trail\""), "schedule": .string(example: "\"0 2 * * *\""),
        "timezone": .string(example: "\"Europe/Berlin\""), "retention": .runsOrDays, "signing_key": .string(example: "\"keys/export.key\""),
        "stream": .string(example: "\"order-1\""), "type": .string(example: "\"Payment\""), "params": .parameters,
    ]

    /// - Throws: `ScheduleConfigError` naming the file and line, the table and the key.
    static func check(_ root: TOMLTable, text: String, file: String) throws {
        let lines = KeyLines(text)
        func fail(_ table: String?, _ key: String, _ message: String) -> ScheduleConfigError {
            let at = lines.line(of: key, in: table).map { "\(file):\($0)" } ?? file
            return ScheduleConfigError(file: at, message: (table.map { "[\($0)]: " } ?? "") + message)
        }
        try check(root, keys: top, table: nil, fail: fail)
        if let zone = root["timezone"]?.string, ZoneName.timeZone(zone) == nil {
            throw fail(nil, "timezone", "unknown time zone \"\(zone)\" (use an IANA name such as UTC or Europe/Berlin)")
        }
        guard let exports = root["exports"]?.table else { return }
        for name in exports.keys.sorted() {
            guard let value = exports[name], let table = value.table else {
                throw fail("exports", name, "\"exports.\(name)\" must be a table, [exports.\(name)], not \(describe(exports[name]))")
            }
            try check(table, keys: export, table: "exports.\(name)", fail: fail)
            guard let params = table["params"]?.table else { continue }
            for key in params.keys.sorted() where ![TOMLType.string, .int].contains(params[key]?.type) {
                throw fail("exports.\(name)", "params", "params.\(key) must be a string or an integer, not \(describe(params[key]))")
            }
        }
    }

    private static func check(
        _ table: TOMLTable, keys: [String: Expected], table name: String?, fail: (String?, String, String) -> ScheduleConfigError
    ) throws {
        for key in table.keys.sorted() {
            guard let expected = keys[key] else {
                let hint = closestName(to: key, in: keys.keys).map { "did you mean \"\($0)\"? " } ?? ""
                throw fail(name, key, "unknown key \"\(key)\" (\(hint)known\(name == nil ? " at the top" : ""): \(keys.keys.sorted().joined(separator: ", ")))")
            }
            guard let value = table[key], expected.accepts(value.type) else {
                throw fail(name, key, "\"\(key)\" must be \(expected.text), not \(describe(table[key]))")
            }
        }
    }

    /// A value as an error message names it: its type, and a scalar's TOML text.
    static func describe(_ value: TOMLValueConvertible?) -> String {
        guard let value else { return "nothing" }
        switch value.type {
        case .string: return "a string (\"\(value.string ?? "")\")"
        case .int: return "an integer (\(value.int.map(String.init) ?? ""))"
        case .double: return "a floating-point number (\(value.double.map { "\($0)" } ?? ""))"
        case .bool: return "a boolean (\(value.bool == true))"
        case .array: return "an array"
        case .table: return "a table"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }
}

/// Where keys are in the file's text, for error messages: the first line `key = …` (or
/// `"key" = …`) under the table's `[header]` (before any header for the top level), or
/// the key's own header, `[table.key]` or `[[table.key]]`. Keys written inline
/// (`exports = { … }`) or dotted are not found: the error then names the file alone.
private struct KeyLines {
    var lines: [Substring]
    init(_ text: String) { lines = text.split(separator: "\n", omittingEmptySubsequences: false) }

    func line(of key: String, in table: String?) -> Int? {
        var current: String?
        for (index, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                current = line.drop { $0 == "[" }.prefix { $0 != "]" }.replacingOccurrences(of: "\"", with: "")
                    .split(separator: ".").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ".")
                if current == (table.map { $0 + "." } ?? "") + key { return index + 1 }
                continue
            }
            guard current == table, let equals = line.firstIndex(of: "=") else { continue }
            if line[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: "\" '")) == key { return index + 1 }
        }
        return nil
    }
}
