import AuditEngine

/// A projection's declared columns, spread into `state --format csv|table` between
/// `key` and `state` (DECISIONS 19): each is the state's top-level field of that name,
/// as the engine fills the table's column.
enum StateColumns {
    /// The declared columns: of the projection's table (key and state aside, in the
    /// table's order) for a read of the table; of its code in `workspace` for a fold
    /// at a point in time.
    static func declared(_ store: EventStore, _ projection: String, _ workspace: WorkspaceOptions?) throws -> [String] {
        if let workspace { return try workspace.loadProjections([projection])[0].get().columns.map(\.name) }
        return try tableColumns(store, projection)
    }

    /// The columns of the projection's table, key and state aside; empty without one.
    static func tableColumns(_ store: EventStore, _ projection: String) throws -> [String] {
        var names: [String] = []
        let quoted = "'" + projection.replacingOccurrences(of: "'", with: "''") + "'"
        try store.query(sql: "SELECT name FROM pragma_table_info(\(quoted)) ORDER BY cid", header: { _ in }) { row in
            if case .text(let name) = row.first, name != "key", name != "state" { names.append(name) }
        }
        return names
    }

    /// The cells of `columns` for one state: text as it is, other values as JSON, an
    /// absent field (or null) empty.
    static func cells(_ state: String, _ columns: [String]) -> [String] {
        guard !columns.isEmpty else { return [] }
        let parsed = try? JSONParser.parse(state)
        return columns.map { column in
            switch parsed?[column] {
            case nil, .null?: return ""
            case .string(let text)?: return text
            case let value?: return CanonicalJSON.string(value)
            }
        }
    }
}
