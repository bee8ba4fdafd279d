/// An event as a caller gives it to the store, before it has a place in the log.
///
/// ```swift
/// let placed = NewEvent(stream: "order-1", type: "OrderPlaced",
///                       data: .object([JSONMember("amount", .int(25))]),
///                       expectedVersion: .noStream)
/// let stored = try store.append(placed).event
/// ```
public struct NewEvent: Sendable, Equatable {
    /// The aggregate or case the event belongs to; non-empty, at most 512 bytes.
    public var stream: String
    /// Any non-empty text, at most 512 bytes ("OrderPlaced", "Create Fine").
    public var type: String
    /// The payload; must be a JSON object.
    public var data: JSONValue
    /// Correlation, causation, actor, tenant, …; a JSON object or nil.
    public var meta: JSONValue?
    /// When it happened; nil means when it is recorded.
    public var occurredAt: Timestamp?
    /// A unique id; nil means a generated UUID. Re-sending an id with identical
    /// content is skipped as a duplicate.
    public var id: String?
    /// The stream version this event expects to follow.
    public var expectedVersion: ExpectedVersion

    public init(
        stream: String, type: String, data: JSONValue = .object([]), meta: JSONValue? = nil,
        occurredAt: Timestamp? = nil, id: String? = nil, expectedVersion: ExpectedVersion = .any
    ) {
        self.stream = stream
        self.type = type
        self.data = data
        self.meta = meta
        self.occurredAt = occurredAt
        self.id = id
        self.expectedVersion = expectedVersion
    }
}

/// Optimistic concurrency: the version a stream must have before an append.
public enum ExpectedVersion: Sendable, Equatable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream's current version must be exactly this (0: the stream must not exist).
    case exactly(Int64)

    /// The stream must not exist yet.
    public static let noStream = ExpectedVersion.exactly(0)

    /// Reads `any`, `none` or a non-negative integer, as the command line and JSONL take it.
    public init?(text: String) {
        switch text {
        case "any": self = .any
        case "none": self = .noStream
        default:
            guard let n = Int64(text), n >= 0 else { return nil }
            self = .exactly(n)
        }
    }

    public var description: String {
        switch self {
        case .any: return "any"
        case .exactly(let n): return String(n)
        }
    }
}

/// An event as the store holds it: immutable, with its place in the log and its hash.
public struct StoredEvent: Sendable, Equatable {
    /// Global position: 1, 2, 3 … with no gaps.
    public var seq: Int64
    public var id: String
    public var stream: String
    /// Position within the stream: 1, 2, 3 …
    public var version: Int64
    public var type: String
    public var occurredAt: Timestamp
    /// When the store committed it; never decreases with `seq`.
    public var recordedAt: Timestamp
    /// The payload as canonical JSON text (keys sorted, no whitespace).
    public var data: String
    /// The metadata as canonical JSON text; `{}` when none was given.
    public var meta: String
    /// SHA-256 over this event's content and the previous event's hash (see `EventHash`).
    public var hash: [UInt8]

    public init(
        seq: Int64, id: String, stream: String, version: Int64, type: String,
        occurredAt: Timestamp, recordedAt: Timestamp, data: String, meta: String, hash: [UInt8]
    ) {
        self.seq = seq
        self.id = id
        self.stream = stream
        self.version = version
        self.type = type
        self.occurredAt = occurredAt
        self.recordedAt = recordedAt
        self.data = data
        self.meta = meta
        self.hash = hash
    }

    /// The hash as lower-case hex.
    public var hashHex: String { Hex.encode(hash) }

    /// The event as one JSON object with every stored field, in a fixed field order:
    /// `{"seq":…,"id":…,"stream":…,"version":…,"type":…,"occurred_at":…,"recorded_at":…,"data":{…},"meta":{…},"hash":"…"}`.
    public var jsonLine: String {
        var out: [UInt8] = []
        out.reserveCapacity(160 + data.utf8.count + meta.utf8.count)
        out.append(contentsOf: "{\"seq\":\(seq),\"id\":".utf8)
        CanonicalJSON.writeString(id, into: &out)
        out.append(contentsOf: ",\"stream\":".utf8)
        CanonicalJSON.writeString(stream, into: &out)
        out.append(contentsOf: ",\"version\":\(version),\"type\":".utf8)
        CanonicalJSON.writeString(type, into: &out)
        out.append(contentsOf: ",\"occurred_at\":\"\(occurredAt)\",\"recorded_at\":\"\(recordedAt)\",\"data\":".utf8)
        out.append(contentsOf: data.utf8)
        out.append(contentsOf: ",\"meta\":".utf8)
        out.append(contentsOf: meta.utf8)
        out.append(contentsOf: ",\"hash\":\"\(hashHex)\"}".utf8)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Lower-case hexadecimal.
package enum Hex {
    package static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
