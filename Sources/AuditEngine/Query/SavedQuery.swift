import Foundation

/// A saved query: the file `NAME.sql` in a queries folder.
///
/// Its name is a name, not a path: letters, digits, `.`, `_` and `-`, as an export's
/// name (it becomes an export's default name), so that `../../x` never reaches outside
/// the folder, from the command line or from `what = "query:NAME"` in audit.toml.
package enum SavedQuery {
    /// Whether `name` can name a saved query.
    package static func isValidName(_ name: String) -> Bool { ExportRequest.isValidName(name) }

    /// What a bad name is told, naming it.
    package static func invalidNameMessage(_ name: String) -> String {
        "invalid saved query name \"\(name)\": a query is named by its file NAME.sql in the queries folder, and NAME may use letters, digits, '.', '_' and '-' (not starting with '.'; no paths)"
    }

    /// The file of query `name` in `folder`.
    package static func file(_ name: String, in folder: String) -> String { folder + "/" + name + ".sql" }

    /// Reads query `name` from `folder`.
    /// - Throws: `QueryError` (invalid input) for a bad name or a query that is not there.
    package static func load(_ name: String, from folder: String) throws -> String {
        guard isValidName(name) else { throw QueryError(source: file(name, in: folder), message: invalidNameMessage(name)) }
        let file = file(name, in: folder)
        guard let sql = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw QueryError(source: file, message: "no such saved query (queries are files NAME.sql in \(folder)/)")
        }
        return sql
    }
}
