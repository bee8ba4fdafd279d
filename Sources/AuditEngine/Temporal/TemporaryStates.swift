import Foundation
import GRDB

/// A private database file that holds projections' states as they were at a point in
/// time, with the store attached (read-only use) as schema `store`. Nothing in it
/// touches the store's own tables; the file is deleted when this is released.
final class TemporaryStates: StateDatabase {
    let queue: DatabaseQueue
    private let directory: URL

    init(storePath: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-asof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = Configuration()
        config.busyMode = .timeout(EventStore.busyTimeout)
        config.prepareDatabase { db in
            // A scratch file: durability is worth nothing here.
            try db.execute(sql: "PRAGMA journal_mode = OFF")
            try db.execute(sql: "PRAGMA synchronous = OFF")
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        queue = try DatabaseQueue(path: directory.appendingPathComponent("states.db").path, configuration: config)
        try queue.inDatabase { db in
            try db.execute(sql: "ATTACH DATABASE ? AS store", arguments: [storePath])
        }
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    func readStates<T>(_ body: (Database) throws -> T) throws -> T {
        try queue.inDatabase(body)
    }

    func writeStates(_ body: (Database) throws -> Void) throws {
        try queue.inTransaction { db in
            try body(db)
            return .commit
        }
    }
}
