import GRDB

/// Where a projection's states are written: its live table, a build table beside it,
/// or a table of a temporary database that answers a temporal query.
struct ReadModelTarget: Sendable {
    enum Kind: Sendable {
        case live, build, temporary
    }

    let projection: String
    let kind: Kind
    let columns: [Projection.Column]

    /// A temporary table's name when it is not the projection's.
    private let name: String?

    /// - Parameter table: for a temporary table, its name (default: the projection's).
    init(projection: String, kind: Kind, columns: [Projection.Column], table: String? = nil) {
        self.projection = projection
        self.kind = kind
        self.columns = columns
        name = kind == .temporary ? table : nil
    }

    init(projection: String, isBuild: Bool, columns: [Projection.Column]) {
        self.init(projection: projection, kind: isBuild ? .build : .live, columns: columns)
    }

    var isBuild: Bool { kind == .build }
    var table: String { name ?? (isBuild ? projection + "__build" : projection) }
    var quotedTable: String { ReadModel.quote(table) }
    /// The catalog table that records its position; a temporary table has none.
    var catalog: String? {
        switch kind {
        case .live: return "projections"
        case .build: return "projection_builds"
        case .temporary: return nil
        }
    }

    /// `INSERT … ON CONFLICT DO UPDATE` of one state (?1 key, ?2 JSON), with its columns
    /// extracted from it.
    var upsertSQL: String { insertSQL(verb: "INSERT", columnValues: extractedColumns) + onConflictUpdate }

    /// As `upsertSQL`, with the columns' values bound (?3, ?4, …) instead of extracted,
    /// for `rows` states at once: row r's parameters follow row r - 1's.
    func boundUpsertSQL(rows: Int) -> String {
        let width = 2 + columns.count
        let tuples = (0..<rows).map { row in
            "(" + (1...width).map { "?\(row * width + $0)" }.joined(separator: ", ") + ")"
        }
        let names = ["key", "state"] + columns.map { ReadModel.quote($0.name) }
        return "INSERT INTO \(quotedTable) (\(names.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", "))" + onConflictUpdate
    }

    /// As `upsertSQL`, for a key the table does not hold yet; a key it holds keeps its state.
    var insertIfAbsentSQL: String { insertSQL(verb: "INSERT OR IGNORE", columnValues: extractedColumns) }

    private var extractedColumns: [String] { columns.map { "json_extract(?2, '$.\($0.name)')" } }

    private var onConflictUpdate: String {
        let updates = ["state = excluded.state"] + columns.map { "\(ReadModel.quote($0.name)) = excluded.\(ReadModel.quote($0.name))" }
        return " ON CONFLICT (key) DO UPDATE SET \(updates.joined(separator: ", "))"
    }

    private func insertSQL(verb: String, columnValues: [String]) -> String {
        let names = ["key", "state"] + columns.map { ReadModel.quote($0.name) }
        let values = ["?1", "?2"] + columnValues
        return "\(verb) INTO \(quotedTable) (\(names.joined(separator: ", "))) VALUES (\(values.joined(separator: ", ")))"
    }

    var createSQL: String {
        let columnDefinitions = columns.map { "\(ReadModel.quote($0.name)) \($0.type.uppercased())" }
        // WITHOUT ROWID: one B-tree keyed by key, instead of a rowid table and a key
        // index; measured about half the cost per state written at a checkpoint.
        return "CREATE TABLE \(quotedTable) (" + (["key TEXT PRIMARY KEY", "state TEXT NOT NULL"] + columnDefinitions).joined(separator: ", ") + ") WITHOUT ROWID"
    }
}

/// What the catalog says of one projection.
public struct ProjectionRecord: Sendable, Equatable {
    public var name: String
    public var version: Int64
    public var codeHash: String
    /// The last seq folded into the table.
    public var position: Int64
    /// "ok" or "failed".
    public var status: String
    public var error: String?
    /// The largest `occurred_at` / `recorded_at` of the events folded up to `position`
    /// (empty before any).
    public var maxOccurredAt: String = ""
    public var maxRecordedAt: String = ""
}

enum ReadModel {
    static func quote(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func record(_ db: Database, name: String, build: Bool) throws -> ProjectionRecord? {
        let table = build ? "projection_builds" : "projections"
        return try Row.fetchOne(db, sql: "SELECT * FROM \(table) WHERE name = ?", arguments: [name]).map(record(from:))
    }

    /// The live projection, if any, whose name differs from `name` only in case: its
    /// table is `name`'s table too.
    static func liveName(_ db: Database, sameTableAs name: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT name FROM projections WHERE name = ?1 COLLATE NOCASE AND name <> ?1", arguments: [name])
    }

    private static func record(from row: Row) -> ProjectionRecord {
        ProjectionRecord(
            name: row["name"], version: row["version"], codeHash: row["code_hash"], position: row["position"],
            status: row["status"], error: row["error"], maxOccurredAt: row["max_occurred_at"],
            maxRecordedAt: row["max_recorded_at"])
    }

    static func records(_ db: Database, build: Bool) throws -> [String: ProjectionRecord] {
        let table = build ? "projection_builds" : "projections"
        var result: [String: ProjectionRecord] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table)") {
            let record = record(from: row)
            result[record.name] = record
        }
        return result
    }

    /// Starts a build from nothing: a new empty build table and catalog row.
    static func startBuild(_ db: Database, projection: Projection, target: ReadModelTarget) throws {
        try db.execute(sql: "DROP TABLE IF EXISTS \(target.quotedTable)")
        try db.execute(sql: target.createSQL)
        try ParkedKeys.clear(db, table: target.table)
        let now = Timestamp.now().description
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO projection_builds (name, version, code_hash, position, status, error, started_at, updated_at)
                VALUES (?, ?, ?, 0, 'ok', NULL, ?, ?)
                """,
            arguments: [projection.name, projection.version, projection.codeHash, now, now])
    }

    static func savePosition(_ db: Database, target: ReadModelTarget, position: Int64, times: FoldedTimes) throws {
        guard let catalog = target.catalog else { return }
        try db.execute(
            sql: """
                UPDATE \(catalog) SET position = ?, max_occurred_at = ?, max_recorded_at = ?, status = 'ok', error = NULL,
                updated_at = ? WHERE name = ?
                """,
            arguments: [position, times.maxOccurredAt, times.maxRecordedAt, Timestamp.now().description, target.projection])
    }

    static func markFailed(_ db: Database, target: ReadModelTarget, error: String) throws {
        guard let catalog = target.catalog else { return }
        try db.execute(
            sql: "UPDATE \(catalog) SET status = 'failed', error = ?, updated_at = ? WHERE name = ?",
            arguments: [error, Timestamp.now().description, target.projection])
    }

    /// Moves a live, ok projection's position to `head` when no event it handles lies
    /// in (position, head]: folding those events would change nothing, and a read or
    /// `audit projections` would otherwise see it behind by events it never takes (the
    /// `CodeBuilt` and export events the engine appends, other projections' types).
    ///
    /// - Complexity: one index probe per handled type (`events_by_type`).
    /// - Returns: whether it moved.
    @discardableResult
    static func skipUnhandled(_ db: Database, name: String, handledTypes: [String], head: Int64) throws -> Bool {
        guard let record = try record(db, name: name, build: false), record.status == "ok", record.position < head else {
            return false
        }
        if try Projection.lagReachesHandlers(db, handledTypes: handledTypes, position: record.position, head: head) { return false }
        try db.execute(sql: "UPDATE projections SET position = ? WHERE name = ?", arguments: [head, name])
        return true
    }

    /// Replaces the live table with the finished build, atomically: readers see the old
    /// table or the new one, never neither.
    static func promote(_ db: Database, projection: Projection, position: Int64, times: FoldedTimes) throws {
        let live = quote(projection.name)
        try db.execute(sql: "DROP TABLE IF EXISTS \(live)")
        try db.execute(sql: "ALTER TABLE \(quote(projection.name + "__build")) RENAME TO \(live)")
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO projections
                    (name, version, code_hash, position, status, error, updated_at, max_occurred_at, max_recorded_at)
                VALUES (?, ?, ?, ?, 'ok', NULL, ?, ?, ?)
                """,
            arguments: [
                projection.name, projection.version, projection.codeHash, position, Timestamp.now().description,
                times.maxOccurredAt, times.maxRecordedAt,
            ])
        try db.execute(sql: "DELETE FROM projection_builds WHERE name = ?", arguments: [projection.name])
        try ParkedKeys.promote(db, projection: projection.name)
    }
}

/// The largest business and system times among the events folded so far: what decides
/// whether states at a position can answer an as-of or known-at question.
struct FoldedTimes: Sendable, Equatable {
    var maxOccurredAt = ""
    var maxRecordedAt = ""

    init(maxOccurredAt: String = "", maxRecordedAt: String = "") {
        self.maxOccurredAt = maxOccurredAt
        self.maxRecordedAt = maxRecordedAt
    }

    init(_ record: ProjectionRecord) {
        self.init(maxOccurredAt: record.maxOccurredAt, maxRecordedAt: record.maxRecordedAt)
    }

    /// Takes in a batch's times. Stored times are fixed-width UTC, so text order is
    /// time order.
    mutating func include(_ other: FoldedTimes) {
        if other.maxOccurredAt > maxOccurredAt { maxOccurredAt = other.maxOccurredAt }
        if other.maxRecordedAt > maxRecordedAt { maxRecordedAt = other.maxRecordedAt }
    }

    /// Whether every event these times cover is selected by `asOf` and `knownAt`.
    func within(asOf: Timestamp?, knownAt: Timestamp?) -> Bool {
        if let asOf, maxOccurredAt > asOf.description { return false }
        if let knownAt, maxRecordedAt > knownAt.description { return false }
        return true
    }
}
