/// The result of appending one event.
public struct AppendResult: Sendable, Equatable {
    /// The event as stored (for a duplicate: the event stored earlier with that id).
    public var event: StoredEvent
    /// True when the id was already stored with identical content and nothing was added.
    public var wasDuplicate: Bool
}

extension EventStore {
    /// Appends one event atomically, checking its expected version under the write lock.
    ///
    /// - Durability: fsynced before it returns.
    /// - Throws: `StoreError.invalidEvent`, `.versionConflict` (another writer moved the
    ///   stream on), `.idConflict` (the id is stored with other content).
    @discardableResult
    public func append(_ event: NewEvent) throws -> AppendResult {
        let prepared: PreparedEvent
        do {
            prepared = try PreparedEvent(event)
        } catch {
            throw StoreError.invalidEvent(reason: error.reason)
        }
        return try writeTransaction { db in
            let writer = try EventWriter(db)
            let outcome = try writer.write(prepared)
            try writer.finish()
            switch outcome {
            case .appended: return AppendResult(event: writer.lastAppended(prepared), wasDuplicate: false)
            case .duplicate(let stored): return AppendResult(event: stored, wasDuplicate: true)
            }
        }
    }
}
