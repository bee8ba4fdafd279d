import CLuaSandbox
import Foundation
import GRDB
import GRDBSQLite

/// A run of events copied out of SQLite, handed from the reader thread to the folder.
struct EventBatch: Sendable {
    /// Every text field of every row, each followed by a NUL.
    var bytes: [UInt8] = []
    var seqs: [Int64] = []
    var versions: [Int64] = []
    /// Per row, offset and length of id, stream, type, occurred_at, recorded_at, data, meta.
    var fields: [Int32] = []
    /// Per row, a stable hash of the stream (FNV-1a), which picks its partition.
    var streamHashes: [UInt64] = []
    /// The last seq this batch covers (the end of the range when it is the last).
    var through: Int64 = 0
    /// The largest occurred_at and recorded_at of its rows.
    var times = FoldedTimes()
    var error: String?

    var count: Int { seqs.count }

    /// Calls `body` with the rows as `avm_event`s pointing into this batch.
    func withEvents<T>(_ body: (UnsafeBufferPointer<avm_event>) throws -> T) rethrows -> T {
        try bytes.withUnsafeBufferPointer { raw in
            let base = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: CChar.self)
            var events = [avm_event](repeating: avm_event(), count: count)
            events.withUnsafeMutableBufferPointer { out in
                for row in 0..<count {
                    let f = row * 14
                    func field(_ i: Int) -> (UnsafePointer<CChar>, Int) {
                        (base + Int(fields[f + 2 * i]), Int(fields[f + 2 * i + 1]))
                    }
                    out[row].seq = seqs[row]
                    out[row].version = versions[row]
                    (out[row].id, out[row].id_len) = field(0)
                    (out[row].stream, out[row].stream_len) = field(1)
                    (out[row].type, out[row].type_len) = field(2)
                    (out[row].occurred_at, out[row].occurred_at_len) = field(3)
                    (out[row].recorded_at, out[row].recorded_at_len) = field(4)
                    (out[row].data, out[row].data_len) = field(5)
                    (out[row].meta, out[row].meta_len) = field(6)
                }
            }
            return try events.withUnsafeBufferPointer(body)
        }
    }

    /// The index of the first row after `seq`.
    func firstRow(after seq: Int64) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if seqs[mid] <= seq { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// Which events of a seq range a replay reads.
struct EventSelection: Sendable {
    /// Only these types (the handled ones), sorted.
    var types: [String]
    /// Every type: a projection has a catch-all handler (`on["*"]`); `types` is ignored.
    var allTypes = false
    /// Only events that occurred at or before this time (a temporal query).
    var asOf: Timestamp?
    /// Only this stream (one key of a projection keyed by stream).
    var stream: String?
    /// The fields of `e` the projections can read (`EventFields`): meta is read out of
    /// SQLite only if one of them reads it (otherwise it is empty). The rest is always
    /// read: the stream and type pick the key and handler, the times are recorded, and a
    /// failing event's id and data are shown in its error.
    var fields = UInt32(AVM_FIELD_ALL)

    /// The SQL of the meta column: itself, or an empty string when no projection reads
    /// `e.meta`, which SQLite then neither decodes nor hands over.
    var metaColumn: String { fields & UInt32(AVM_FIELD_META) != 0 ? "meta" : "'' AS meta" }
}

/// Reads the selected events of seq range (from, end] on its own thread, in batches, so
/// that SQLite's work overlaps the Lua folding on the other core.
final class EventBatchReader: Sendable {
    let channel = BatchChannel<EventBatch>(capacity: 3)

    init(pool: any DatabaseReader, from: Int64, end: Int64, selection: EventSelection, batchSize: Int) {
        let channel = self.channel
        let thread = Thread {
            EventBatchReader.run(pool: pool, from: from, end: end, selection: selection, batchSize: batchSize, channel: channel)
        }
        thread.start()
    }

    /// The next batch, or nil after the last.
    func next() -> EventBatch? { channel.receive() }

    /// Stops the reader early.
    func cancel() { channel.cancel() }

    private static func run(
        pool: any DatabaseReader, from: Int64, end: Int64, selection: EventSelection, batchSize: Int, channel: BatchChannel<EventBatch>
    ) {
        defer { channel.close() }
        let types = selection.allTypes ? [] : selection.types
        guard selection.allTypes || !types.isEmpty else {
            var empty = EventBatch()
            empty.through = end
            _ = channel.send(empty)
            return
        }
        let placeholders = types.map { _ in "?" }.joined(separator: ", ")
        // `+type` keeps SQLite on the seq order of the primary key instead of the type index.
        var conditions = types.isEmpty ? "" : " AND +type IN (\(placeholders))"
        if selection.asOf != nil { conditions += " AND +occurred_at <= :asOf" }
        if selection.stream != nil { conditions += " AND stream = :stream" }
        let sql = """
            SELECT seq, id, stream, version, type, occurred_at, recorded_at, data, \(selection.metaColumn) FROM events
            WHERE seq > ? AND seq <= ?\(conditions) ORDER BY seq LIMIT :limit
            """
        var position = from
        var maxOccurred: Int32 = -1
        var maxRecorded: Int32 = -1
        while position < end {
            maxOccurred = -1
            maxRecorded = -1
            var batch = EventBatch()
            batch.seqs.reserveCapacity(batchSize)
            batch.versions.reserveCapacity(batchSize)
            batch.fields.reserveCapacity(batchSize * 14)
            batch.bytes.reserveCapacity(batchSize * 192)
            do {
                try pool.read { db in
                    let statement = try db.makeStatement(sql: sql)
                    let stmt = statement.sqliteStatement
                    sqlite3_bind_int64(stmt, 1, position)
                    sqlite3_bind_int64(stmt, 2, end)
                    for (i, type) in types.enumerated() {
                        sqlite3_bind_text(stmt, Int32(i + 3), type, -1, SQLITE_TRANSIENT_DESTRUCTOR)
                    }
                    sqlite3_bind_int64(stmt, sqlite3_bind_parameter_index(stmt, ":limit"), Int64(batchSize))
                    if let asOf = selection.asOf {
                        sqlite3_bind_text(
                            stmt, sqlite3_bind_parameter_index(stmt, ":asOf"), asOf.description, -1, SQLITE_TRANSIENT_DESTRUCTOR)
                    }
                    if let stream = selection.stream {
                        sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":stream"), stream, -1, SQLITE_TRANSIENT_DESTRUCTOR)
                    }
                    while true {
                        let rc = sqlite3_step(stmt)
                        if rc == SQLITE_DONE { break }
                        guard rc == SQLITE_ROW else {
                            throw StoreError.storage("reading events failed: SQLite error \(rc): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                        }
                        batch.seqs.append(sqlite3_column_int64(stmt, 0))
                        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
                        if let stream = sqlite3_column_text(stmt, 2) {
                            for byte in UnsafeBufferPointer(start: stream, count: Int(sqlite3_column_bytes(stmt, 2))) {
                                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
                            }
                        }
                        batch.streamHashes.append(hash)
                        batch.versions.append(sqlite3_column_int64(stmt, 3))
                        for column: Int32 in [1, 2, 4, 5, 6, 7, 8] {
                            let length = Int(sqlite3_column_bytes(stmt, column))
                            batch.fields.append(Int32(batch.bytes.count))
                            batch.fields.append(Int32(length))
                            if let text = sqlite3_column_text(stmt, column) {
                                batch.bytes.append(contentsOf: UnsafeBufferPointer(start: text, count: length))
                            }
                            batch.bytes.append(0)
                        }
                        let occurred = batch.fields[batch.fields.count - 8]  // column 5's offset
                        let recorded = batch.fields[batch.fields.count - 6]  // column 6's
                        maxOccurred = Self.later(batch.bytes, occurred, maxOccurred)
                        maxRecorded = Self.later(batch.bytes, recorded, maxRecorded)
                    }
                }
            } catch {
                batch.error = "\(error)"
                _ = channel.send(batch)
                return
            }
            batch.through = batch.count < batchSize ? end : batch.seqs.last!
            batch.times = FoldedTimes(maxOccurredAt: Self.text(batch.bytes, maxOccurred), maxRecordedAt: Self.text(batch.bytes, maxRecorded))
            position = batch.through
            if !channel.send(batch) { return }
        }
    }

    /// Of two NUL-terminated times in `bytes` (offset -1: none), the offset of the later.
    private static func later(_ bytes: [UInt8], _ a: Int32, _ b: Int32) -> Int32 {
        guard b >= 0 else { return a }
        return bytes.withUnsafeBufferPointer { raw in
            strcmp(UnsafeRawPointer(raw.baseAddress! + Int(a)).assumingMemoryBound(to: CChar.self),
                   UnsafeRawPointer(raw.baseAddress! + Int(b)).assumingMemoryBound(to: CChar.self)) > 0 ? a : b
        }
    }

    private static func text(_ bytes: [UInt8], _ offset: Int32) -> String {
        guard offset >= 0 else { return "" }
        let start = Int(offset)
        let end = bytes[start...].firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
