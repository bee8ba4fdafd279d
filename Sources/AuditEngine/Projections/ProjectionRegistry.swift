import GRDB

/// Which projections a database holds (DECISIONS 15): those it has a table, a build in
/// progress or a recorded build of. `replay` compares them with a folder's, so that a
/// folder lacking some or holding others is told, not silently built into the database.
public struct ProjectionRegistry: Sendable, Equatable {
    /// The registered names, sorted.
    public var names: [String]

    /// What `replay` does with a folder's projections.
    public struct Plan: Sendable, Equatable {
        /// The folder's names to replay.
        public var replay: [String]
        /// Registered projections the folder lacks: their tables are left as they are.
        public var lacking: [String]
        /// The folder's projections the database does not hold, not built (no `--add`).
        public var notAdded: [String]
        /// Whether the folder and the database hold different sets.
        public var differs: Bool { !lacking.isEmpty || !notAdded.isEmpty }
    }

    /// Plans a replay of `folder`'s projections (or of `named` ones, a subset of them).
    /// A database holding none yet registers the whole folder; otherwise newcomers are
    /// built only with `add`. Names compare as their tables' names do: without case.
    package func plan(folder: [String], named: [String] = [], add: Bool) -> Plan {
        let registered = Set(names.map(ProjectionNames.folded))
        let inFolder = Set(folder.map(ProjectionNames.folded))
        let wanted = named.isEmpty ? folder : named
        let first = names.isEmpty
        var replay: [String] = [], notAdded: [String] = []
        for name in wanted {
            if first || add || registered.contains(ProjectionNames.folded(name)) {
                replay.append(name)
            } else {
                notAdded.append(name)
            }
        }
        let lacking = named.isEmpty ? names.filter { !inFolder.contains(ProjectionNames.folded($0)) } : []
        return Plan(replay: replay, lacking: lacking, notAdded: notAdded)
    }

    static func read(_ db: Database) throws -> ProjectionRegistry {
        // A database an older build made has no code history (`audit_builds`) yet.
        let builds = try db.tableExists("audit_builds") ? " UNION SELECT projection FROM audit_builds" : ""
        let names = try String.fetchAll(
            db, sql: "SELECT name FROM projections UNION SELECT name FROM projection_builds\(builds) ORDER BY 1")
        // A name recorded in two cases (renamed) is one projection.
        var seen: Set<String> = []
        return ProjectionRegistry(names: names.filter { seen.insert(ProjectionNames.folded($0)).inserted })
    }
}

extension EventStore {
    /// The projections this database holds (see `ProjectionRegistry`).
    public func projectionRegistry() throws -> ProjectionRegistry {
        try readTransaction { db in try ProjectionRegistry.read(db) }
    }
}
