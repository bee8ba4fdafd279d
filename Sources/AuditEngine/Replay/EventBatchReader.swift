import CLuaSandbox
import Foundation
import GRDB

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
    /// With `EventSelection.reportsSkipped`: the events of the range that occurred after
    /// `asOf`, which are not among the rows.
    var skipped: [SkippedEvent] = []
    /// Why reading stopped, in the last batch.
    var error: (any Error)?

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
    /// Only these streams (keys folded again by a series, see `PointFold`).
    var streams: [String]?
    /// With `asOf`: the events that occurred after it are listed in their batch's
    /// `skipped` instead of being left out unseen (a series folds them at a later point).
    var reportsSkipped = false
    /// The fields of `e` the projections can read (`EventFields`): meta is read out of
    /// SQLite only if one of them reads it (otherwise it is empty). The rest is always
    /// read: the stream and type pick the key and handler, the times are recorded, and a
    /// failing event's id and data are shown in its error.
    var fields = UInt32(AVM_FIELD_ALL)

    /// The SQL of the meta column: itself, or an empty string when no projection reads
    /// `e.meta`, which SQLite then neither decodes nor hands over.
    var metaColumn: String { fields & UInt32(AVM_FIELD_META) != 0 ? "meta" : "'' AS meta" }
}

/// An event of a range read as of a time, which it occurred after.
struct SkippedEvent: Sendable {
    let seq: Int64
    let stream: String
    let type: String
    let occurredAt: String
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
        if selection.asOf != nil, !selection.reportsSkipped { conditions += " AND +occurred_at <= :asOf" }
        if selection.stream != nil { conditions += " AND stream = :stream" }
        if selection.streams != nil { conditions += " AND stream IN (SELECT value FROM json_each(:streams))" }
        let asOf = selection.reportsSkipped ? selection.asOf.map { Array($0.description.utf8) } : nil
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
            var rowsRead = 0  // with the skipped ones
            var lastRead = position
            var batch = EventBatch()
            batch.seqs.reserveCapacity(batchSize)
            batch.versions.reserveCapacity(batchSize)
            batch.fields.reserveCapacity(batchSize * 14)
            batch.bytes.reserveCapacity(batchSize * 192)
            do {
                try pool.read { db in
                    let statement = try SQLStatement(db, sql)
                    statement.bind(1, position)
                    statement.bind(2, end)
                    for (i, type) in types.enumerated() {
                        statement.bind(Int32(i + 3), text: type)
                    }
                    statement.bind(statement.index(of: ":limit"), Int64(batchSize))
                    if let asOf = selection.asOf, !selection.reportsSkipped {
                        statement.bind(statement.index(of: ":asOf"), text: asOf.description)
                    }
                    if let stream = selection.stream {
                        statement.bind(statement.index(of: ":stream"), text: stream)
                    }
                    if let streams = selection.streams {
                        var list: [UInt8] = [UInt8(ascii: "[")]
                        for (i, stream) in streams.enumerated() {
                            if i > 0 { list.append(UInt8(ascii: ",")) }
                            CanonicalJSON.writeString(stream, into: &list)
                        }
                        list.append(UInt8(ascii: "]"))
                        list.withUnsafeBytes { statement.bind(statement.index(of: ":streams"), text: $0) }
                    }
                    while try statement.step("cannot read the events") {
                        rowsRead += 1
                        lastRead = statement.int64(0)
                        let stream = statement.text(2)
                        if let asOf, asOf.withUnsafeBytes({ SortedStates.compare(statement.text(5), $0) > 0 }) {
                            batch.skipped.append(SkippedEvent(
                                seq: statement.int64(0), stream: String(decoding: stream, as: UTF8.self), type: statement.string(4),
                                occurredAt: statement.string(5)))
                            continue
                        }
                        batch.seqs.append(statement.int64(0))
                        batch.streamHashes.append(Self.streamHash(stream))
                        batch.versions.append(statement.int64(3))
                        for column: Int32 in [1, 2, 4, 5, 6, 7, 8] {
                            let text = statement.text(column)
                            batch.fields.append(Int32(batch.bytes.count))
                            batch.fields.append(Int32(text.count))
                            batch.bytes.append(contentsOf: text)
                            batch.bytes.append(0)
                        }
                        let occurred = batch.fields[batch.fields.count - 8]  // column 5's offset
                        let recorded = batch.fields[batch.fields.count - 6]  // column 6's
                        maxOccurred = Self.later(batch.bytes, occurred, maxOccurred)
                        maxRecorded = Self.later(batch.bytes, recorded, maxRecorded)
                    }
                }
            } catch {
                batch.error = error
                _ = channel.send(batch)
                return
            }
            batch.through = rowsRead < batchSize ? end : lastRead
            batch.times = FoldedTimes(maxOccurredAt: Self.text(batch.bytes, maxOccurred), maxRecordedAt: Self.text(batch.bytes, maxRecorded))
            position = batch.through
            if !channel.send(batch) { return }
        }
    }

    /// The stable hash of a stream (FNV-1a) that picks the partition folding it.
    static func streamHash<Bytes: Sequence<UInt8>>(_ stream: Bytes) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in stream { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
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
