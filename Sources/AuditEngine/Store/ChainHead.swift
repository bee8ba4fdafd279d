import GRDB

/// The end of the hash chain: the `chain_head` record, or the last stored event it must
/// agree with field by field (seq, hash, recorded_at).
struct ChainHead: Equatable {
    var seq: Int64
    var hash: [UInt8]
    /// The stored text, as bytes ("" before the first event).
    var recordedAt: [UInt8]

    /// The head of an empty log.
    static let empty = ChainHead(seq: 0, hash: EventHash.genesis, recordedAt: [])

    /// The `chain_head` record.
    ///
    /// - Throws: `StoreError.integrity` when it is missing or any field has another
    ///   storage class than the engine writes.
    static func read(_ db: Database, schema: String = "main") throws -> ChainHead {
        let statement = try SQLStatement(db, "SELECT seq, hash, recorded_at FROM \(schema).chain_head WHERE singleton = 1")
        guard try statement.step() else {
            throw StoreError.integrity(seq: 0, reason: "the chain head record is missing; run audit verify")
        }
        guard statement.storageClass(0) == .integer, statement.storageClass(1) == .blob, statement.blob(1).count == 32,
              statement.storageClass(2) == .text
        else {
            throw StoreError.integrity(seq: 0, reason: "the chain head record is damaged; run audit verify")
        }
        return ChainHead(seq: statement.int64(0), hash: [UInt8](statement.blob(1)), recordedAt: statement.bytes(2))
    }

    /// The last stored event's seq, hash and recorded_at (`empty` for an empty log).
    ///
    /// - Throws: `StoreError.integrity` when they have other storage classes than the
    ///   engine writes.
    static func lastEvent(_ db: Database, schema: String = "main") throws -> ChainHead {
        let statement = try SQLStatement(db, "SELECT seq, hash, recorded_at FROM \(schema).events ORDER BY seq DESC LIMIT 1")
        guard try statement.step() else { return .empty }
        guard statement.storageClass(1) == .blob, statement.blob(1).count == 32, statement.storageClass(2) == .text else {
            throw StoreError.integrity(
                seq: statement.int64(0), reason: "the last stored event is damaged, so nothing was appended; run audit verify")
        }
        return ChainHead(seq: statement.int64(0), hash: [UInt8](statement.blob(1)), recordedAt: statement.bytes(2))
    }

    /// The head a read answers up to: the record, checked to be there, as the engine
    /// writes it, and equal to the last stored event. A read never takes a missing or
    /// edited record for an empty or shorter log (which would leave events out of its
    /// answer without a word).
    ///
    /// - Throws: `StoreError.integrity` when the record is missing, damaged, or does not
    ///   match the last event.
    static func forReading(_ db: Database, schema: String = "main") throws -> ChainHead {
        let head = try read(db, schema: schema)
        let last = try lastEvent(db, schema: schema)
        try requireMatch(head, last, consequence: "")
        return head
    }

    /// Throws when `head` is not `last` field by field; `consequence` is said before
    /// "; run audit verify" (", so nothing was appended").
    private static func requireMatch(_ head: ChainHead, _ last: ChainHead, consequence: String) throws {
        guard head != last else { return }
        let field = head.seq != last.seq ? "seq" : head.hash != last.hash ? "hash" : "recorded_at"
        throw StoreError.integrity(
            seq: last.seq,
            reason: "the chain head record does not match the last stored event (its \(field) differs): the database was changed outside the engine\(consequence); run audit verify")
    }

    /// The seq a read answers up to (`forReading`).
    static func seq(_ db: Database, schema: String = "main") throws -> Int64 {
        try forReading(db, schema: schema).seq
    }

    /// The head a writer appends after: the record, checked to equal the last event,
    /// and the last event's recorded_at as a time (nil for an empty log).
    ///
    /// - Throws: `StoreError.integrity` when they differ (someone changed the database
    ///   outside the engine): nothing may be appended until `verify` has been run.
    static func forAppending(_ db: Database) throws -> (head: ChainHead, lastRecordedAt: Timestamp?) {
        let last = try lastEvent(db)
        let head: ChainHead
        do {
            head = try read(db)
        } catch StoreError.integrity(_, let reason) {
            throw StoreError.integrity(seq: last.seq, reason: reason.replacingOccurrences(of: "; run", with: ", so nothing was appended; run"))
        }
        try requireMatch(head, last, consequence: ", so nothing was appended")
        guard !last.recordedAt.isEmpty else { return (head, nil) }
        guard let time = try? Timestamp(rfc3339: String(decoding: last.recordedAt, as: UTF8.self)) else {
            throw StoreError.integrity(
                seq: last.seq, reason: "the last event's recorded_at is not a time, so nothing was appended; run audit verify")
        }
        return (head, time)
    }
}
