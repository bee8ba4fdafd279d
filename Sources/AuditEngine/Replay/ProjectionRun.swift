import CLuaSandbox
import GRDB
import GRDBSQLite

/// One projection being replayed: its VM, where it writes, and how far it is.
final class ProjectionRun {
    let projection: Projection
    let target: ReadModelTarget
    let vm: LuaVM
    var position: Int64
    let startPosition: Int64
    var eventsApplied = 0
    var failure: ProjectionError?
    var failureRecorded = false
    /// The position of the last committed checkpoint.
    private(set) var checkpointed: Int64

    var isActive: Bool { failure == nil }

    init(projection: Projection, target: ReadModelTarget, position: Int64, limits: LuaLimits?) throws {
        self.projection = projection
        self.target = target
        self.position = position
        startPosition = position
        checkpointed = position
        vm = try projection.makeVM(limits: limits)
        // An empty table has no stored states: start every key from init without asking.
        vm.assumeNoStoredStates(position == 0)
    }

    /// Folds one event; on failure records it and stops this projection.
    func apply(_ event: inout avm_event, db: Database) {
        do {
            switch try vm.apply(&event) {
            case .applied: eventsApplied += 1
            case .skipped: break
            case .needsState(let key):
                let stored = try String.fetchOne(
                    db.cachedStatement(sql: "SELECT state FROM \(target.quotedTable) WHERE key = ?"), arguments: [key])
                try vm.provideState(key: key, json: stored)
                if case .applied = try vm.apply(&event) { eventsApplied += 1 }
            }
        } catch {
            let type = String(decoding: UnsafeRawBufferPointer(start: event.type, count: event.type_len), as: UTF8.self)
            let stream = String(cString: event.stream)
            let id = String(decoding: UnsafeRawBufferPointer(start: event.id, count: event.id_len), as: UTF8.self)
            failure = ProjectionError(
                projection: projection.name, seq: event.seq,
                message: "handler \"\(type)\" (event \(id), stream \"\(stream)\"): \(error)")
        }
    }

    /// Writes every state changed since the last checkpoint and the position, inside
    /// the caller's write transaction. A state that cannot be stored (a function, NaN,
    /// a cycle) fails this projection before anything of it is written.
    func checkpoint(_ db: Database) throws {
        let statement = try db.makeStatement(sql: target.upsertSQL)
        let stmt = statement.sqliteStatement
        do {
            try flush(into: stmt, db: db)
        } catch let error as LuaError {
            failure = ProjectionError(
                projection: projection.name,
                message: "\(error.message) (changed by an event from seq \(checkpointed + 1) to \(position); find it with `audit replay --checkpoint-every 1`)")
            return
        }
        try ReadModel.savePosition(db, target: target, position: position)
    }

    /// After the checkpoint's transaction committed.
    func checkpointCommitted() { checkpointed = position }

    private func flush(into stmt: OpaquePointer?, db: Database) throws {
        _ = try vm.flush { key, json in
            sqlite3_reset(stmt)
            sqlite3_bind_text(stmt, 1, key.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(key.count), SQLITE_TRANSIENT_DESTRUCTOR)
            sqlite3_bind_text(stmt, 2, json.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(json.count), SQLITE_TRANSIENT_DESTRUCTOR)
            let rc = sqlite3_step(stmt)
            guard rc == SQLITE_DONE else {
                throw StoreError.storage(
                    "cannot write the state of projection \(projection.name): SQLite error \(rc): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
            }
        }
    }

    /// Whether the VM holds more than half its memory limit: time to checkpoint and
    /// let go of its states.
    var needsMemory: Bool { vm.memoryUsed > vm.memoryLimit / 2 }

    /// After a committed checkpoint: let go of states when the VM holds more than half
    /// its memory limit, so memory stays bounded however many keys there are.
    func trimMemory() throws {
        if needsMemory { try vm.evict() }
    }
}
