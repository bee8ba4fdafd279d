import Foundation
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

    /// The schema each sequence of this build's migrations makes, by its last migration:
    /// made at the first check of a database with that sequence, then kept (every open
    /// checks the schema, so a process pays for the one sequence it meets, once).
    private static let made = Made()

    /// A schema's objects in sqlite_master's order, and by lowercased name.
    private struct Objects {
        var objects: [Object]
        var byName: [String: Object]
    }

    private final class Made: @unchecked Sendable {
        private let lock = NSLock()
        private var schemas: [String: Result<Objects, any Error>] = [:]

        func callAsFunction(_ last: String) throws -> Objects {
            lock.lock()
            defer { lock.unlock() }
            if let made = schemas[last] { return try made.get() }
            let made = Result { () throws -> Objects in
                let objects = try SchemaCheck.made(byMigrationsUpTo: last)
                return Objects(objects: objects, byName: Dictionary(objects.map { ($0.name.lowercased(), $0) }, uniquingKeysWith: { a, _ in a }))
            }
            schemas[last] = made
            return try made.get()
        }
    }

    /// What is wrong with the schema of `db`, which records `applied` migrations (as
    /// read from it, in this build's order). Empty when it is as the engine made it.
    static func problems(_ db: Database, applied: [String]) throws -> [String] {
        let known = Schema.migrationIdentifiers
        guard !applied.isEmpty, applied == Array(known.prefix(applied.count)) else {
            return ["the schema was altered: grdb_migrations records the migrations \(applied.joined(separator: ", ")), which is not a sequence this build's migrations (\(known.joined(separator: ", "))) leave"]
        }
        guard let last = applied.last else { return [] }
        let expected = try made(last)
        let found = try objects(db)
        var problems: [String] = []
        for object in expected.objects {
            guard let actual = found.byName[object.name.lowercased()] else {
                problems.append("the schema was altered: \(object.type) \(object.name) is missing")
                continue
            }
            if actual != object {
                let was = actual.type == object.type ? "" : " (it is now a \(actual.type))"
                problems.append("the schema was altered: \(object.type) \(object.name) is not as the engine made it\(was)")
            }
        }
        for object in found.objects where expected.byName[object.name.lowercased()] == nil {
            if object.type == "trigger" {
                problems.append("the schema was altered: there is a trigger \(object.name) on \(object.table), which the engine never makes")
            } else if object.type != "table", let table = expected.byName[object.table.lowercased()], table.type == "table" {
                problems.append("the schema was altered: there is an \(object.type) \(object.name) on the engine's table \(object.table)")
            }
        }
        return problems
    }

    /// The objects of `db`'s main schema, read as stored, in its order and by
    /// lowercased name (SQLite compares names with ASCII case folding, so no two share one).
    private static func objects(_ db: Database) throws -> Objects {
        let rows = try SQLStatement(db, "SELECT type, name, tbl_name, sql FROM main.sqlite_master")
        var found = Objects(objects: [], byName: [:])
        while try rows.step() {
            let object = Object(
                type: rows.string(0), name: rows.string(1), table: rows.string(2),
                sql: rows.storageClass(3) == .null ? nil : rows.string(3))
            found.objects.append(object)
            found.byName[object.name.lowercased()] = found.byName[object.name.lowercased()] ?? object
        }
        return found
    }

    /// The schema the migrations up to `last` make in an empty database.
    private static func made(byMigrationsUpTo last: String) throws -> [Object] {
        let queue = try DatabaseQueue()
        try Schema.migrator.migrate(queue, upTo: last)
        return try queue.read(objects).objects
    }
}
