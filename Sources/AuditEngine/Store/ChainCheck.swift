import GRDB

/// `verify`'s check of the events, one stored row at a time, in seq order.
///
/// Each row is read as SQLite stores it, never coerced: every column must have the
/// storage class the engine writes, every text must be UTF-8, and the row's hash must
/// be SHA-256 over its *stored* predecessor's hash and its own stored bytes. Checking
/// against the stored predecessor (rather than the one recomputed) reports each
/// damaged row on its own, so one bad event cannot hide another.
///
/// Written to be trap-free on any input: no force unwraps, wrapping arithmetic on
/// stored integers, and reads of exactly the lengths SQLite reports.
struct ChainCheck {
    /// The event columns in the order the check's SELECT reads them.
    static let columns = "seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash"
    private static let texts: [(column: Int32, name: String)] = [
        (1, "id"), (2, "stream"), (4, "type"), (5, "occurred_at"), (6, "recorded_at"), (7, "data"), (8, "meta"),
    ]

    private(set) var findings = IntegrityFindings()
    /// The last row checked, as stored (`ChainHead.empty` before the first).
    private(set) var last = ChainHead.empty
    private(set) var rows: Int64 = 0
    /// Whether `last` is a stored row (checked, or the predecessor given).
    private var hasLast = false
    private var hasher = EventHash()
    private var expectedSeq: Int64 = 1
    private var indexes = IndexCheck()

    /// A check of the whole log, from seq 1.
    init() {}

    /// A check of the rows from seq `previous.seq + 1` on, each linked to its stored
    /// predecessor as in the whole log's check: `previous` is the row before, as stored
    /// (nil when there is none, so the first row's link is not checked).
    init(from seq: Int64, after previous: ChainHead?) {
        expectedSeq = max(1, seq)
        if let previous, seq > 1 {
            last = previous
            hasLast = true
        }
    }

    /// Checks the current row of a statement selecting `columns`.
    mutating func check(_ row: SQLStatement) {
        var faults: [String] = []
        if row.storageClass(0) != .integer { faults.append("its seq is stored as \(row.storageClass(0)), not an integer") }
        let seq = row.int64(0)
        // The hash links to the row before only when that row is the previous seq.
        var linked = true
        let previous: [UInt8]
        if seq == 1 {
            previous = EventHash.genesis
        } else {
            previous = last.hash
            linked = hasLast && last.seq &+ 1 == seq
        }
        if seq > expectedSeq {
            let gap = seq &- 1 == expectedSeq ? "event seq \(expectedSeq) is missing" : "events seq \(expectedSeq)–\(seq &- 1) are missing"
            findings.add(seq: expectedSeq, "\(gap) (the next stored event is seq \(seq)): events were removed")
        } else if seq < expectedSeq {
            faults.append("it is out of order (it comes after seq \(expectedSeq &- 1))")
        }

        var content: [String] = []
        for (column, name) in Self.texts {
            let storage = row.storageClass(column)
            if storage != .text {
                faults.append("its \(name) is stored as \(storage), not text")
            } else if let issue = TextCheck.scan(row.text(column)).describe(name) {
                content.append(issue)
            }
        }
        if row.storageClass(3) != .integer { faults.append("its version is stored as \(row.storageClass(3)), not an integer") }
        let hash = row.blob(9)
        if row.storageClass(9) != .blob || hash.count != 32 {
            faults.append("its hash is stored as \(row.storageClass(9)) of \(hash.count) bytes, not a 32-byte blob")
        }

        let recorded = row.text(6)
        if hasLast, recorded.lexicographicallyPrecedes(last.recordedAt) {
            faults.append("its recorded_at goes back in time (before seq \(last.seq)'s)")
        }
        if linked {
            let fields = EventHash.StoredFields(
                id: row.text(1), stream: row.text(2), type: row.text(4), occurredAt: row.text(5), recordedAt: recorded,
                data: row.text(7), meta: row.text(8))
            let matches = previous.withUnsafeBytes { previous in
                hasher.matches(hash, previous: previous, seq: seq, version: row.int64(3), fields: fields)
            }
            if !matches {
                faults.append("the stored event does not match its hash: it was changed, replaced or moved after it was recorded")
                faults += content
            } else if !content.isEmpty, faults.isEmpty {
                findings.olderBuild(
                    seq: seq,
                    content.joined(separator: "; ")
                        + ", which this build refuses at entry; its hash matches the stored bytes, so an older build accepted it")
            } else {
                faults += content
            }
        } else {
            faults += content
        }
        if !faults.isEmpty { findings.add(seq: seq, faults.joined(separator: "; ")) }

        indexes.add(row: row)
        last = ChainHead(seq: seq, hash: [UInt8](hash), recordedAt: [UInt8](recorded))
        rows &+= 1
        hasLast = true
        if seq >= expectedSeq { expectedSeq = seq &+ 1 }
    }

    /// Compares each of the `present` indexes of `events` with the rows checked.
    mutating func checkIndexes(_ db: Database, present: Set<String>) throws {
        let indexes = self.indexes
        try indexes.check(db, present: present, rows: rows, into: &self)
    }

    /// Records a problem found by another part of the check.
    mutating func add(seq: Int64?, _ reason: String) { findings.add(seq: seq, reason) }

    /// Checks the `chain_head` records (read with `singleton, seq, hash, recorded_at`)
    /// against the last event: every field must equal it.
    mutating func checkHead(_ head: SQLStatement) throws {
        let end = last.seq
        guard try head.step() else {
            findings.add(seq: end &+ 1, "the chain head record is missing")
            return
        }
        var faults: [String] = []
        for (column, name, expected) in [(Int32(0), "singleton", StorageClass.integer), (1, "seq", .integer), (2, "hash", .blob), (3, "recorded_at", .text)]
        where head.storageClass(column) != expected {
            faults.append("its \(name) is stored as \(head.storageClass(column)), not \(expected)")
        }
        if head.storageClass(0) == .integer, head.int64(0) != 1 { faults.append("its singleton is \(head.int64(0)), not 1") }
        let seq = head.int64(1)
        if head.storageClass(1) != .integer {
            // Its seq says nothing; the other fields are still compared.
        } else if seq > end {
            findings.add(
                seq: end &+ 1, "the log ends at seq \(end) but the chain head records seq \(seq): events were removed from the end")
        } else if seq < end {
            findings.add(
                seq: seq &+ 1, "events after seq \(seq) were added outside the engine (the chain head record ends there)")
        }
        if head.storageClass(1) != .integer || seq == end {
            if !head.blob(2).elementsEqual(last.hash) {
                faults.append("its hash is not the hash of the last event (seq \(end))")
            }
            if !head.text(3).elementsEqual(last.recordedAt) {
                faults.append("its recorded_at (\(head.string(3))) is not the last event's (\(String(decoding: last.recordedAt, as: UTF8.self)))")
            }
        }
        if try head.step() { faults.append("there is more than one chain head record") }
        if !faults.isEmpty { findings.add(seq: end == 0 ? nil : end, "the chain head record is damaged: " + faults.joined(separator: "; ")) }
    }
}
