import GRDB

/// The one rule for SQL that users hand in — `audit query`, saved queries, query
/// exports (now, at a past time, scheduled) — enforced where it is compiled: exactly
/// one statement, with nothing after it but comments; its first keyword `SELECT`,
/// `WITH` or `VALUES` (so no `PRAGMA`, `ATTACH`, `DETACH`, `BEGIN`, `COMMIT`,
/// `SAVEPOINT`, `CREATE TEMP …`, `VACUUM`, which read-only connections do not all
/// stop); and read-only as SQLite judges it (`sqlite3_stmt_readonly`, which catches
/// `WITH … DELETE`). Table-valued pragma functions inside a SELECT
/// (`SELECT * FROM pragma_table_info('events')`) stay allowed.
///
/// No authorizer is installed: GRDB owns the connection's and tracks the regions a
/// statement reads with it, which the temporal path relies on.
enum UserSQL {
    static let queryKeywords: Set<String> = ["SELECT", "WITH", "VALUES"]

    /// Compiles `sql` as a user's query on `db`.
    /// - Throws: `QueryError` naming `source`: "not a query: …", or SQLite's message
    ///   for SQL that does not compile.
    static func prepare(_ db: Database, sql: String, source: String) throws -> Statement {
        func refuse(_ why: String) -> QueryError {
            QueryError(source: source, message: "not a query: \(why); a query is one SELECT, WITH or VALUES statement, which only reads")
        }
        guard let keyword = firstKeyword(sql) else { throw refuse("the SQL is empty") }
        guard queryKeywords.contains(keyword) else {
            guard keyword.first?.isLetter == true else { throw refuse("it starts with \"\(keyword)\", not with SELECT, WITH or VALUES") }
            let hint = keyword == "PRAGMA" ? " (pragma functions inside a SELECT are allowed, e.g. SELECT * FROM pragma_table_info('events'))" : ""
            throw refuse("it is \(keyword.first.map { "AEIOU".contains($0) } == true ? "an" : "a") \(keyword) statement\(hint)")
        }
        let statements: SQLStatementCursor
        let statement: Statement
        do {
            statements = try db.allStatements(sql: sql)
            guard let first = try statements.next() else { throw refuse("the SQL is empty") }
            statement = first
        } catch let error as DatabaseError {
            let message = error.message ?? "\(error)"
            // WITH … INSERT/UPDATE/DELETE on a view does not even compile.
            if message.range(of: "^cannot modify .* because it is a view$", options: .regularExpression) != nil {
                throw refuse("the statement writes (\(message))")
            }
            throw QueryError(source: source, message: SQLHints.explain(message, sql: sql, db: db))
        }
        // Anything after the first statement but comments, even what does not compile.
        let more: Bool
        do { more = try statements.next() != nil } catch { more = true }
        if more { throw refuse("the SQL holds more than one statement") }
        guard statement.isReadonly else { throw refuse("the statement writes") }
        return statement
    }

    /// The first word of `sql`, uppercased, after whitespace and comments; nil when
    /// there is none. A statement that starts with another character gives that
    /// character, which is no keyword.
    static func firstKeyword(_ sql: String) -> String? {
        let bytes = Array(sql.utf8)
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x20 || (0x09...0x0D).contains(c) {
                i += 1
            } else if c == UInt8(ascii: "-"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "-") {
                while i < bytes.count, bytes[i] != 0x0A { i += 1 }
            } else if c == UInt8(ascii: "/"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "*") {
                i += 2
                while i + 1 < bytes.count, !(bytes[i] == UInt8(ascii: "*") && bytes[i + 1] == UInt8(ascii: "/")) { i += 1 }
                i += 2
            } else {
                break
            }
        }
        guard i < bytes.count else { return nil }
        func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") }
        var end = i
        while end < bytes.count, isLetter(bytes[end]) { end += 1 }
        if end == i { end = i + 1 }
        return String(decoding: bytes[i..<end], as: UTF8.self).uppercased()
    }
}
