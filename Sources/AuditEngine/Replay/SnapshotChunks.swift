import GRDB

/// How a snapshot's delta is stored: its (key, state) records in key order, packed
/// into chunks of about a few KB (`snapshot_chunks`, one row per chunk, found by the
/// chunk's first key).
///
/// One row per state made taking a snapshot a B-tree insert per state and reading one
/// a SQLite step per state; a chunk carries some sixty states, and finding one key
/// still reads a single small chunk per delta.
enum SnapshotChunks {
    /// A chunk is closed once it holds this many bytes (a quarter of a 16 KB page).
    static let targetBytes = 4096

    /// A delta id of `chain` that no snapshot or chunk uses yet.
    static func newDelta(_ db: Database, chain: Int64) throws -> Int64 {
        let used = try Int64.fetchOne(
            db,
            sql: """
                SELECT max(m) FROM (SELECT max(delta) AS m FROM snapshots WHERE chain = ?1
                                    UNION ALL SELECT max(delta) FROM snapshot_chunks WHERE chain = ?1)
                """,
            arguments: [chain])
        return (used ?? 0) + 1
    }

    /// Deletes the chunks of the chain's snapshots at `seq` and later.
    static func deleteDeltas(_ db: Database, chain: Int64, fromSeq seq: Int64) throws {
        try db.execute(
            sql: "DELETE FROM snapshot_chunks WHERE chain = ?1 AND delta IN (SELECT delta FROM snapshots WHERE chain = ?1 AND seq >= ?2)",
            arguments: [chain, seq])
    }

    /// One key's state in one delta, or nil: the only chunk that may hold it is read.
    static func state(_ db: Database, schema: String, chain: Int64, delta: Int64, key: String) throws -> String? {
        let statement = try SQLStatement(db, """
            SELECT records, count FROM \(schema).snapshot_chunks WHERE chain = ? AND delta = ? AND first_key <= ?
            ORDER BY first_key DESC LIMIT 1
            """, cached: true)
        statement.bind(1, chain)
        statement.bind(2, delta)
        statement.bind(3, text: key)
        defer { statement.reset() }
        guard try statement.step("cannot read the snapshot chunks of chain \(chain)") else { return nil }
        var records = StateRecords(statement.blob(0), count: Int(statement.int64(1)))
        let wanted = Array(key.utf8)
        do {
            while let (k, state) = try records.next() {
                if wanted.withUnsafeBytes({ SortedStates.compare(k, $0) }) == 0 { return String(decoding: state, as: UTF8.self) }
            }
        } catch {
            throw DamagedChunk(description: "the snapshot chunks of chain \(chain), delta \(delta) are damaged: a chunk's records do not parse")
        }
        return nil
    }

    static func deleteDelta(_ db: Database, chain: Int64, delta: Int64) throws {
        try db.execute(sql: "DELETE FROM snapshot_chunks WHERE chain = ? AND delta = ?", arguments: [chain, delta])
    }
}

/// A chunk whose records do not parse: the snapshot that holds it is damaged.
struct DamagedChunk: Error, CustomStringConvertible {
    let description: String
}

/// Writes one delta: records added in ascending key order, packed into chunks.
final class ChunkWriter {
    private let insert: SQLStatement
    private var buffer: [UInt8] = []
    private var firstKey: [UInt8] = []
    private var count = 0
    /// The digest of every record added.
    private(set) var digest = DeltaDigest()

    init(_ db: Database, chain: Int64, delta: Int64) throws {
        insert = try SQLStatement(db, "INSERT INTO snapshot_chunks (chain, delta, first_key, count, records) VALUES (?, ?, ?, ?, ?)")
        insert.bind(1, chain)
        insert.bind(2, delta)
        buffer.reserveCapacity(SnapshotChunks.targetBytes + 256)
    }

    func add(_ key: UnsafeRawBufferPointer, _ state: UnsafeRawBufferPointer) throws {
        digest.add(key: key, state: state)
        if count == 0 { firstKey = Array(key) }
        StateRecords.append(key, state, to: &buffer)
        count += 1
        if buffer.count >= SnapshotChunks.targetBytes { try flush() }
    }

    /// Writes the last chunk; returns the digest of the whole delta.
    func finish() throws -> DeltaDigest {
        try flush()
        return digest
    }

    private func flush() throws {
        guard count > 0 else { return }
        insert.reset()
        firstKey.withUnsafeBytes { insert.bind(3, text: $0) }
        insert.bind(4, Int64(count))
        insert.bind(5, blob: buffer)
        try insert.run("cannot write a snapshot")
        buffer.removeAll(keepingCapacity: true)
        count = 0
    }
}

/// The records of one delta in key order (or only those of one key), read chunk by
/// chunk without copying: a chunk's bytes stay valid until the statement steps on.
final class ChunkCursor: StateCursor {
    private let statement: SQLStatement
    private let reading: String
    private let only: [UInt8]?
    private var records = StateRecords(UnsafeRawBufferPointer(start: nil, count: 0), count: 0)
    private var exhausted = false
    private(set) var key: UnsafeRawBufferPointer?
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)

    /// - Parameter key: only this key's record: the one chunk that may hold it is read.
    init(_ db: Database, schema: String, chain: Int64, delta: Int64, key: String? = nil) throws {
        reading = "the snapshot chunks of chain \(chain), delta \(delta)"
        only = key.map { Array($0.utf8) }
        if let key {
            statement = try SQLStatement(db, """
                SELECT records, count FROM \(schema).snapshot_chunks WHERE chain = ? AND delta = ? AND first_key <= ?
                ORDER BY first_key DESC LIMIT 1
                """)
            statement.bind(3, text: key)
        } else {
            statement = try SQLStatement(
                db, "SELECT records, count FROM \(schema).snapshot_chunks WHERE chain = ? AND delta = ? ORDER BY first_key")
        }
        statement.bind(1, chain)
        statement.bind(2, delta)
        try advance()
    }

    func advance() throws {
        while true {
            let next: (key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer)?
            do {
                next = try records.next()
            } catch {
                throw DamagedChunk(description: "\(reading) are damaged: a chunk's records do not parse")
            }
            if let (key, state) = next {
                if let only, only.withUnsafeBytes({ SortedStates.compare(key, $0) }) != 0 { continue }
                (self.key, self.state) = (key, state)
                return
            }
            guard !exhausted, try statement.step("cannot read \(reading)") else {
                exhausted = true
                key = nil
                return
            }
            records = StateRecords(statement.blob(0), count: Int(statement.int64(1)))
        }
    }
}
