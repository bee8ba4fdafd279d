import Foundation
import GRDB

/// One SQL value of a query result.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// The value as JSON: numbers as numbers, text as a string, a blob as hex.
    public var json: String {
        switch self {
        case .null: return "null"
        case .integer(let i): return String(i)
        case .real(let d): return d.isFinite ? d.description : "null"
        case .text(let s):
            var out: [UInt8] = []
            CanonicalJSON.writeString(s, into: &out)
            return String(decoding: out, as: UTF8.self)
        case .blob(let b): return "\"" + Hex.encode(b) + "\""
        }
    }

    /// The value as text for CSV and tables (null is empty).
    public var text: String {
        switch self {
        case .null: return ""
        case .integer(let i): return String(i)
        case .real(let d): return d.description
        case .text(let s): return s
        case .blob(let b): return Hex.encode(b)
        }
    }
}

/// An SQL query that could not run: bad SQL, a missing parameter, an attempt to write.
public struct QueryError: AuditFailure {
    public var source: String
    public var message: String
    public var category: FailureCategory { .invalidInput }

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }
    public var description: String { "\(source): \(message)" }
}

extension EventStore {
    /// Runs one read-only SQL statement over the events and the projections' tables,
    /// calling `header` with the column names and then `row` with each row.
    ///
    /// - Parameters:
    ///   - parameters: values for `:name` placeholders. A value that is a decimal
    ///     integer binds as an integer, anything else as text.
    ///   - source: names the query in error messages (a file or "--sql").
    public func query(
        sql: String, parameters: [String: String] = [:], source: String = "--sql",
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        do {
            try pool.read { db in
                // No attachments while a user's statement runs (a reader that does not
                // create files still opens existing ones).
                let attached = db.attachmentLimit
                db.attachmentLimit = 0
                defer { db.attachmentLimit = attached }
                try EventStore.runQuery(db, sql: sql, parameters: parameters, source: source, header: header, row: row)
            }
        } catch let error as DatabaseError {
            throw QueryError(source: source, message: error.message ?? "\(error)")
        }
    }

    /// Prepares `sql` on `db`, checks its parameters against `parameters`, and runs it.
    static func runQuery(
        _ db: Database, sql: String, parameters: [String: String], source: String,
        header: ([String]) throws -> Void, row: ([SQLValue]) throws -> Void
    ) throws {
        let statement = try UserSQL.prepare(db, sql: sql, source: source)
        try bind(statement, parameters, source: source)
        try header(statement.columnNames)
        let cursor = try Row.fetchCursor(statement)
        while let next = try cursor.next() {
            try row(next.databaseValues.map { value in
                switch value.storage {
                case .null: return .null
                case .int64(let i): return .integer(i)
                case .double(let d): return .real(d)
                case .string(let s): return .text(s)
                case .blob(let data): return .blob([UInt8](data))
                }
            })
        }
    }


    /// Binds `parameters` to a user's statement, after checking that they are exactly
    /// the `:name` placeholders it has.
    static func bind(_ statement: Statement, _ parameters: [String: String], source: String) throws {
        var wanted: Set<String> = []
        for name in SQLStatement(statement).parameterNames {
            guard let name else { throw QueryError(source: source, message: "use named parameters (:name) with --param, not ?") }
            wanted.insert(String(name.dropFirst()))
        }
        let missing = wanted.subtracting(parameters.keys).sorted()
        if !missing.isEmpty {
            throw QueryError(source: source, message: "missing parameter(s): \(missing.map { "--param \($0)=…" }.joined(separator: ", "))")
        }
        let unused = Set(parameters.keys).subtracting(wanted).sorted()
        if !unused.isEmpty {
            throw QueryError(source: source, message: "the query has no parameter(s) \(unused.map { ":" + $0 }.joined(separator: ", "))")
        }
        try statement.setArguments(StatementArguments(parameters.mapValues { value -> (any DatabaseValueConvertible)? in
            if let integer = Int64(value), String(integer) == value { return integer }
            return value
        }))
    }

    /// Every distinct event type in the log, sorted.
    /// - Complexity: one pass over the type index.
    package func eventTypes() throws -> [String] {
        try readTransaction { db in try String.fetchAll(db, sql: "SELECT DISTINCT type FROM events ORDER BY type") }
    }

    /// The catalog record of every projection: live ones and builds in progress.
    public func projectionRecords() throws -> (live: [String: ProjectionRecord], builds: [String: ProjectionRecord]) {
        try readTransaction { db in
            (try ReadModel.records(db, build: false), try ReadModel.records(db, build: true))
        }
    }

    /// Calls `body(key, stateJSON)` for the projection's states in key order (bytewise),
    /// or only for `key`.
    ///
    /// - Throws: `ProjectionError` when the projection has no table yet; `IntegrityFailure`
    ///   when a row is not as the engine writes one (`StoredState`).
    public func forEachState(projection: String, key: String? = nil, _ body: (String, String) throws -> Void) throws {
        try readTransaction { db in
            guard try db.tableExists(projection), try ReadModel.record(db, name: projection, build: false) != nil else {
                throw ProjectionError(projection: projection, message: "it has no state yet: run `audit replay \(projection)` first")
            }
            let table = ReadModel.quote(projection)
            let rows: RowCursor
            if let key {
                rows = try Row.fetchCursor(db, sql: "SELECT key, state FROM \(table) WHERE key = ?", arguments: [key])
            } else {
                rows = try Row.fetchCursor(db, sql: "SELECT key, state FROM \(table) ORDER BY key")
            }
            while let row = try rows.next() {
                let (key, state) = try StoredState.checked(row, projection: projection)
                try body(key, state)
            }
        }
    }
}
