import GRDB

/// `verify`'s comparison of the database's schema with the one the engine made: every
/// table, index and trigger the migrations the database records created, with the
/// same SQL (so a dropped trigger, a table no longer STRICT, a changed constraint, an
/// `events` that is now a view are all found), and no trigger or index the engine did
/// not make on its own tables, nor any trigger at all.
///
/// The expected schema is made by running the same migrations on an empty in-memory
/// database, so it is exactly what this build's migrations leave, for a database of
/// any version. Other tables (projections, their builds, a user's own) are not the
/// log's and are not compared.
enum SchemaCheck {
    struct Object: Equatable {
        var type: String
        var name: String
        var table: String
        var sql: String?
    }

    /// The schema each sequence of this build's migrations makes, by its last migration
    /// (made once, at the first verification).
    private static let made: [String: Result<[Object], any Error>] = Dictionary(
        uniqueKeysWithValues: Schema.migrationIdentifiers.map { last in (last, Result { try made(byMigrationsUpTo: last) }) })

    /// What is wrong with the schema of `db`, which records `applied` migrations (as
    /// read from it, in this build's order). Empty when it is as the engine made it.
    static func problems(_ db: Database, applied: [String]) throws -> [String] {
        let known = Schema.migrationIdentifiers
        guard !applied.isEmpty, applied == Array(known.prefix(applied.count)) else {
            return ["the schema was altered: grdb_migrations records the migrations \(applied.joined(separator: ", ")), which is not a sequence this build's migrations (\(known.joined(separator: ", "))) leave"]
        }
        guard let last = applied.last, let expected = try made[last]?.get() else { return [] }
        let found = try objects(db)
        var problems: [String] = []
        let engineTables = Set(expected.filter { $0.type == "table" }.map { $0.name.lowercased() })
        for object in expected {
            guard let actual = found.first(where: { $0.name.lowercased() == object.name.lowercased() }) else {
                problems.append("the schema was altered: \(object.type) \(object.name) is missing")
                continue
            }
            if actual != object {
                let was = actual.type == object.type ? "" : " (it is now a \(actual.type))"
                problems.append("the schema was altered: \(object.type) \(object.name) is not as the engine made it\(was)")
            }
        }
        for object in found where !expected.contains(where: { $0.name.lowercased() == object.name.lowercased() }) {
            if object.type == "trigger" {
                problems.append("the schema was altered: there is a trigger \(object.name) on \(object.table), which the engine never makes")
            } else if engineTables.contains(object.table.lowercased()) {
                problems.append("the schema was altered: there is an \(object.type) \(object.name) on the engine's table \(object.table)")
            }
        }
        return problems
    }

    /// The objects of `db`'s main schema, read as stored.
    private static func objects(_ db: Database) throws -> [Object] {
        let rows = try SQLStatement(db, "SELECT type, name, tbl_name, sql FROM main.sqlite_master")
        var objects: [Object] = []
        while try rows.step() {
            objects.append(Object(
                type: rows.string(0), name: rows.string(1), table: rows.string(2),
                sql: rows.storageClass(3) == .null ? nil : rows.string(3)))
        }
        return objects
    }

    /// The schema the migrations up to `last` make in an empty database.
    private static func made(byMigrationsUpTo last: String) throws -> [Object] {
        let queue = try DatabaseQueue()
        try Schema.migrator.migrate(queue, upTo: last)
        return try queue.read(objects)
    }
}
