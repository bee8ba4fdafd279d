import Foundation
import GRDB

/// The result of a successful chain check.
public struct VerifyReport: Sendable, Equatable {
    /// Events checked.
    public var events: Int64
    /// The hash of the last event (the chain head), hex.
    public var head: String

    /// `{"ok":true,"events":N,"head":"<hex>"}`
    public var json: String { "{\"ok\":true,\"events\":\(events),\"head\":\"\(head)\"}" }
}

extension EventStore {
    /// Recomputes the whole hash chain from the stored rows and checks it against the
    /// recorded head.
    ///
    /// Detects any row changed, removed, inserted or reordered by editing the database
    /// file directly, and events removed from the end. It does not detect a rewrite
    /// that recomputes every later hash and the head too: for that, compare the head
    /// with one recorded outside the database (an export manifest, a published value).
    ///
    /// - Complexity: reads every event once, in one read transaction.
    /// - Throws: `StoreError.integrity` naming the first bad seq.
    public func verify() throws -> VerifyReport {
        try readTransaction { db in
            var hasher = EventHash()
            var previous = EventHash.genesis
            var expectedSeq: Int64 = 1
            var lastRecorded = ""
            let rows = try Row.fetchCursor(
                db,
                sql: "SELECT seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash FROM events ORDER BY seq")
            while let row = try rows.next() {
                let seq: Int64 = row[0]
                if seq != expectedSeq {
                    throw StoreError.integrity(
                        seq: expectedSeq,
                        reason: seq > expectedSeq
                            ? "event seq \(expectedSeq) is missing (the next stored event is seq \(seq)): events were removed"
                            : "seq \(seq) is out of order")
                }
                // Hash the stored text exactly as it is: an edit that keeps the meaning
                // but changes the bytes is still an edit.
                let stored = row[9] as Data? ?? Data()
                let recorded: String = row[6]
                let computed = hasher.hash(
                    previous: previous, seq: seq, id: row[1], stream: row[2], version: row[3], type: row[4],
                    occurredAt: row[5], recordedAt: recorded, data: row[7], meta: row[8])
                guard stored.elementsEqual(computed) else {
                    throw StoreError.integrity(
                        seq: seq,
                        reason: "the stored event does not match its hash: it was changed, replaced or moved after it was recorded")
                }
                if recorded < lastRecorded {
                    throw StoreError.integrity(seq: seq, reason: "recorded_at goes back in time")
                }
                lastRecorded = recorded
                previous = computed
                expectedSeq += 1
            }
            let lastSeq = expectedSeq - 1
            let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM chain_head WHERE singleton = 1")
            guard let head else {
                throw StoreError.integrity(seq: lastSeq + 1, reason: "the chain head record is missing")
            }
            let headSeq: Int64 = head["seq"]
            let headHash = [UInt8](head["hash"] as Data? ?? Data())
            if headSeq > lastSeq {
                throw StoreError.integrity(
                    seq: lastSeq + 1,
                    reason: "the log ends at seq \(lastSeq) but the chain head records seq \(headSeq): events were removed from the end")
            }
            if headSeq < lastSeq {
                throw StoreError.integrity(
                    seq: headSeq + 1, reason: "events after seq \(headSeq) were added outside the engine (the chain head ends there)")
            }
            if lastSeq > 0, headHash != previous {
                throw StoreError.integrity(seq: lastSeq, reason: "the last event's hash does not match the chain head record")
            }
            return VerifyReport(events: lastSeq, head: Hex.encode(previous))
        }
    }
}
