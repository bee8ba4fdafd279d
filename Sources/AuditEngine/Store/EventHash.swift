import Crypto

/// The tamper-evident hash chain.
///
/// Each event's hash is SHA-256 over the previous event's hash and a length-prefixed
/// encoding of every stored field, so changing, removing, inserting or reordering a
/// row changes the hash of that row and breaks every link after it:
///
/// ```
/// hash(n) = SHA-256( "audit.event.v1" 0x00
///                    hash(n-1)                      32 bytes; 32 zero bytes for seq 1
///                    seq  version                   8-byte big-endian each
///                    id stream type occurred_at recorded_at data meta
///                                                   each: 4-byte big-endian length, UTF-8 bytes )
/// ```
///
/// `data` and `meta` are hashed as their stored canonical JSON text, and the times in
/// their fixed-width form, so an auditor can recompute the chain from an export
/// without this engine.
package struct EventHash {
    /// The hash before the first event.
    package static let genesis = [UInt8](repeating: 0, count: 32)

    private static let domain: [UInt8] = Array("audit.event.v1".utf8) + [0]
    private var scratch: [UInt8] = []

    package init() {
        scratch.reserveCapacity(512)
    }

    /// The hash of one event given the previous event's hash.
    package mutating func hash(
        previous: [UInt8], seq: Int64, id: String, stream: String, version: Int64, type: String,
        occurredAt: String, recordedAt: String, data: String, meta: String
    ) -> [UInt8] {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: EventHash.domain)
        scratch.append(contentsOf: previous)
        appendInteger(seq)
        appendInteger(version)
        appendField(id)
        appendField(stream)
        appendField(type)
        appendField(occurredAt)
        appendField(recordedAt)
        appendField(data)
        appendField(meta)
        return Array(SHA256.hash(data: scratch))
    }

    /// The hash of a stored event, recomputed from its fields.
    package mutating func hash(of event: StoredEvent, previous: [UInt8]) -> [UInt8] {
        hash(
            previous: previous, seq: event.seq, id: event.id, stream: event.stream, version: event.version,
            type: event.type, occurredAt: event.occurredAt.description, recordedAt: event.recordedAt.description,
            data: event.data, meta: event.meta)
    }

    /// The text fields of a stored row, as the bytes SQLite holds.
    struct StoredFields {
        var id, stream, type, occurredAt, recordedAt, data, meta: UnsafeRawBufferPointer
    }

    /// Whether a stored row's hash is `stored`: SHA-256 over `previous` and the row's
    /// bytes exactly as stored (so a value an older build stored with a NUL in it
    /// still matches, and a value whose bytes changed does not).
    mutating func matches(
        _ stored: UnsafeRawBufferPointer, previous: UnsafeRawBufferPointer, seq: Int64, version: Int64, fields: StoredFields
    ) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: EventHash.domain)
        scratch.append(contentsOf: previous)
        appendInteger(seq)
        appendInteger(version)
        appendField(fields.id)
        appendField(fields.stream)
        appendField(fields.type)
        appendField(fields.occurredAt)
        appendField(fields.recordedAt)
        appendField(fields.data)
        appendField(fields.meta)
        return SHA256.hash(data: scratch).withUnsafeBytes { $0.elementsEqual(stored) }
    }

    private mutating func appendInteger(_ value: Int64) {
        withUnsafeBytes(of: value.bigEndian) { scratch.append(contentsOf: $0) }
    }

    private mutating func appendField(_ bytes: UnsafeRawBufferPointer) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian) { scratch.append(contentsOf: $0) }
        scratch.append(contentsOf: bytes)
    }

    private mutating func appendField(_ text: String) {
        withUnsafeBytes(of: UInt32(text.utf8.count).bigEndian) { scratch.append(contentsOf: $0) }
        scratch.append(contentsOf: text.utf8)
    }
}
