/// `verify`'s check of the `event_correlations` index: it is derived from the log (an
/// event's `meta.correlation_id`, see `CorrelationId`), so it is rebuilt from the
/// stored, hashed meta of each event and compared with the table, read in seq order
/// beside the events. Finds rows removed (an event the index omits), added or changed
/// (an index row no event's meta carries).
struct CorrelationCheck {
    private let rows: SQLStatement
    /// The index row read but not yet matched with an event.
    private var pending: (seq: Int64, id: [UInt8])?
    private var done = false

    init(_ rows: SQLStatement) {
        self.rows = rows
    }

    /// The SELECT `init` takes.
    static let sql = "SELECT seq, correlation_id FROM event_correlations ORDER BY seq, correlation_id"

    /// Compares the index rows of event `seq` with what its stored `meta` derives.
    mutating func check(seq: Int64, meta: UnsafeRawBufferPointer, into check: inout ChainCheck) throws {
        var listed: [[UInt8]] = []
        while let next = try peek(into: &check), next.seq <= seq {
            if next.seq < seq {
                check.add(
                    seq: next.seq, "event_correlations lists seq \(next.seq) under \(quoted(next.id)), but no such event was read in its place: the index was changed")
            } else {
                listed.append(next.id)
            }
            pending = nil
        }
        let derived = CorrelationId.of(storedMeta: meta)
        switch (derived, listed.isEmpty) {
        case (nil, true):
            break
        case (let id?, true):
            check.add(seq: seq, "event_correlations omits it, although its meta.correlation_id is \(quoted(id)): the index was changed")
        case (nil, false):
            check.add(
                seq: seq,
                "event_correlations lists it under \(listed.map(quoted).joined(separator: ", ")), but its meta carries no correlation_id: the index was changed")
        case (let id?, false):
            if listed != [id] {
                check.add(
                    seq: seq,
                    "event_correlations lists it under \(listed.map(quoted).joined(separator: ", ")), but its meta.correlation_id is \(quoted(id)): the index was changed")
            }
        }
    }

    /// Reports the index rows left after the last event.
    mutating func finish(into check: inout ChainCheck) throws {
        while let next = try peek(into: &check) {
            check.add(seq: next.seq, "event_correlations lists seq \(next.seq) under \(quoted(next.id)), but there is no such event: the index was changed")
            pending = nil
        }
    }

    /// The next index row, read when none is pending.
    private mutating func peek(into check: inout ChainCheck) throws -> (seq: Int64, id: [UInt8])? {
        if let pending { return pending }
        guard !done else { return nil }
        guard try rows.step() else {
            done = true
            return nil
        }
        let seq = rows.int64(0)
        if rows.storageClass(0) != .integer || rows.storageClass(1) != .text {
            check.add(
                seq: seq,
                "event_correlations holds a row whose seq is \(rows.storageClass(0)) and correlation_id \(rows.storageClass(1)), not an integer and text: the index was changed")
        }
        pending = (seq, rows.bytes(1))
        return pending
    }

    private func quoted(_ id: [UInt8]) -> String {
        var out: [UInt8] = []
        CanonicalJSON.writeString(utf8: id, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
