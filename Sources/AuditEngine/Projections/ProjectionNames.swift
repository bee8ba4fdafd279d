/// How projection names are compared and which are refused: as SQLite compares table
/// names, with ASCII case folding, since each name is its table's name.
package enum ProjectionNames {
    /// `name` with ASCII letters lowercased, as SQLite folds identifiers.
    package static func folded(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { $0 >= "A" && $0 <= "Z" ? Unicode.Scalar($0.value + 32)! : $0 }))
    }

    /// Names of the engine's own tables (folded), which no projection may take.
    static let engineTables: Set<String> = [
        "events", "projections", "projection_builds", "chain_head", "event_correlations", "grdb_migrations",
        "snapshot_chains", "snapshots", "snapshot_chunks", "export_runs",
    ]
    /// Prefixes kept for tables to come: the engine's (`audit_`), SQLite's (`sqlite_`)
    /// and GRDB's (`grdb_`, which it uses for its migrations and probes).
    static let reservedPrefixes = ["audit_", "sqlite_", "grdb_"]
    /// The suffix of the table a rebuild is made in (`NAME__build`).
    static let buildSuffix = "__build"

    /// Why `name` (a file's name without `.lua`) cannot name a projection, or nil.
    static func problem(_ name: String) -> String? {
        guard name.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
            return "a projection's file name is its SQL table name: use letters, digits and _ (not starting with a digit)"
        }
        let folded = folded(name)
        if engineTables.contains(folded) {
            return "\"\(name)\" is the name of one of the engine's own tables (SQLite compares table names without case); rename the file"
        }
        if let prefix = reservedPrefixes.first(where: { folded.hasPrefix($0) }) {
            return "names beginning with \(prefix) (in any case) are kept for the \(prefix == "sqlite_" ? "SQLite's" : prefix == "grdb_" ? "database library's" : "engine's") own tables; rename the file"
        }
        if folded.hasSuffix(buildSuffix) {
            return "names ending in __build (in any case) name the table a rebuild is made in: \"\(name)\" would be the build table of projection \(name.dropLast(buildSuffix.count)); rename the file"
        }
        return nil
    }

    /// For each name that another one equals once folded: a message naming all of them
    /// (their files, when given), keyed by name.
    static func collisions(_ names: [(name: String, file: String)]) -> [String: String] {
        var result: [String: String] = [:]
        for group in Dictionary(grouping: names, by: { folded($0.name) }).values where group.count > 1 {
            let files = group.map(\.file).sorted()
            let message = "\(files.joined(separator: " and ")) differ only in case, and SQLite compares table names without case, so they would share one table: rename all but one"
            for member in group { result[member.name] = message }
        }
        return result
    }
}
