import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a saved query (queries/NAME.sql) or inline SQL over the projections' tables and events.",
            discussion: """
                Each projection is a table named after it (key, state, and its declared columns);
                the events table is readable too. Parameters are :name placeholders bound with
                --param name=value (decimal integers bind as integers, anything else as text).
                Examples:
                  audit query open_orders
                  audit query --sql 'SELECT count(*) AS n FROM events WHERE type = :t' --param t=Payment
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions
        @Argument(help: "A saved query's name (queries/NAME.sql).") var name: String?
        @Option(help: "Inline SQL instead of a saved query.") var sql: String?
        @Option(help: ArgumentHelp("A parameter, name=value (repeatable).", valueName: "name=value")) var param: [String] = []
        @Option(help: "table, csv, json or jsonl.") var format: OutputFormat = .table

        func validate() throws {
            if (name == nil) == (sql == nil) { throw ValidationError("give a saved query's name or --sql, not both") }
            for p in param where !p.contains("=") { throw ValidationError("--param takes name=value, not '\(p)'") }
        }

        func run() throws {
            let store = try openStore(global)
            var text = sql ?? ""
            var source = "--sql"
            if let name {
                source = "\(workspace.queries)/\(name).sql"
                guard let saved = try? String(contentsOfFile: source, encoding: .utf8) else {
                    throw QueryError(source: source, message: "no such saved query (queries are files NAME.sql in \(workspace.queries)/)")
                }
                text = saved
            }
            var parameters: [String: String] = [:]
            for p in param {
                let parts = p.split(separator: "=", maxSplits: 1)
                parameters[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            var writer: ResultWriter?
            try store.query(sql: text, parameters: parameters, source: source, header: { columns in
                writer = ResultWriter(columns: columns, format: format)
            }, row: { values in
                writer!.row(values)
            })
            writer?.finish()
        }
    }
}
