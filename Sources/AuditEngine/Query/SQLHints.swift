import GRDB

/// SQLite's message for SQL that does not compile, with what to do about the mistakes
/// people make most: a table name that is not there (the tables there are, and the
/// closest one), and text in double quotes, which SQL reads as a column's name.
enum SQLHints {
    static func explain(_ message: String, sql: String, db: Database) -> String {
        if let name = suffix(of: message, after: "no such table: ") {
            let tables = queryableTables(db)
            if let closest = closestName(to: name, in: tables) {
                return "\(message) (did you mean \(closest)? the tables are: \(tables.joined(separator: ", ")))"
            }
            return "\(message) (the tables are: \(tables.joined(separator: ", ")); a projection that does not exist or was never built has none: run audit replay)"
        }
        if let name = suffix(of: message, after: "no such column: "), sql.contains("\"\(name)\"") {
            return "\(message) (\"\(name)\" in double quotes is a column's name in SQL; write text in single quotes: '\(name)')"
        }
        return message
    }

    private static func suffix(of message: String, after prefix: String) -> String? {
        guard message.hasPrefix(prefix) else { return nil }
        return String(message.dropFirst(prefix.count))
    }

    /// The tables and views a query reads: `events` and the projections' tables, without
    /// the engine's own, builds in progress and SQLite's.
    static func queryableTables(_ db: Database) -> [String] {
        let names = (try? String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")) ?? []
        return names.filter { name in
            let folded = ProjectionNames.folded(name)
            if folded == "events" { return true }
            return ProjectionNames.problem(name) == nil
        }.sorted()
    }
}
