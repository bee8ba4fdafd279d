import ArgumentParser
import AuditEngine

/// What `query` and `report` run: a saved query's name or inline SQL, and its
/// `--param name=value` parameters.
struct QueryText: ParsableArguments {
    @Argument(help: "A saved query's name (queries/NAME.sql).", completion: WorkspaceCompletion.queries) var name: String?
    @Option(help: "Inline SQL instead of a saved query.") var sql: String?
    @Option(help: ArgumentHelp("A parameter, name=value (repeatable).", valueName: "name=value")) var param: [String] = []

    func validate() throws {
        if name == nil, sql == nil { throw ValidationError("give a saved query's name (queries/NAME.sql) or --sql SQL") }
        if name != nil, sql != nil { throw ValidationError("give a saved query's name or --sql, not both") }
        if let name, !SavedQuery.isValidName(name) { throw ValidationError(SavedQuery.invalidNameMessage(name)) }
        for p in param where !p.contains("=") { throw ValidationError("--param takes name=value, not '\(p)'") }
    }

    /// The parameters by name.
    var parameters: [String: String] {
        var parameters: [String: String] = [:]
        for p in param {
            let parts = p.split(separator: "=", maxSplits: 1)
            parameters[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return parameters
    }

    /// The SQL, where it came from (the saved query's file, or `--sql`, for messages),
    /// and the parameters by name.
    func load(_ workspace: WorkspaceOptions) throws -> (sql: String, source: String, parameters: [String: String]) {
        guard let name else { return (sql ?? "", "--sql", parameters) }
        return (try SavedQuery.load(name, from: workspace.queries), SavedQuery.file(name, in: workspace.queries), parameters)
    }
}
