import GRDB
import GRDBSQLite

/// The engine's few calls on a GRDB connection itself, not on a statement (those are
/// `SQLStatement`'s). GRDB owns the connection, its authorizer included: nothing here
/// changes what GRDB set up.
enum SQLConnection {
    /// The main database file's path of `connection` (without the `file:` URI a
    /// read-only open may use).
    static func displayPath(_ connection: OpaquePointer?) -> String {
        guard let name = sqlite3_db_filename(connection, "main") else { return "the database" }
        let path = String(cString: name)
        return path.isEmpty ? "a temporary database" : path
    }
}

extension Database {
    /// The main database file's path (without the `file:` URI a read-only open may use).
    var displayPath: String { SQLConnection.displayPath(sqliteConnection) }

    /// How many databases may be attached to this connection (SQLite's
    /// `SQLITE_LIMIT_ATTACHED`); setting it lowers it (SQLite never raises a limit past
    /// its compiled maximum).
    var attachmentLimit: Int32 {
        get { sqlite3_limit(sqliteConnection, SQLITE_LIMIT_ATTACHED, -1) }
        set { sqlite3_limit(sqliteConnection, SQLITE_LIMIT_ATTACHED, newValue) }
    }
}
