/// Limits on one event, so that a bad producer cannot bloat the log.
public enum EventLimits {
    public static let maxStreamBytes = 512
    public static let maxTypeBytes = 512
    public static let maxIdBytes = 256
    /// Of the canonical JSON text of `data`, and separately of `meta`.
    public static let maxPayloadBytes = 1 << 20
    /// Of one input line of `audit ingest`.
    public static let maxLineBytes = 4 << 20
}

/// An event validated and reduced to what the store writes: canonical JSON text and
/// parsed times. Made off the writer's thread, so the writer only assigns positions.
struct PreparedEvent: Sendable {
    var id: String?
    var stream: String
    var type: String
    var data: String
    var meta: String
    var occurredAt: Timestamp?
    /// `occurredAt` in its stored text form, formatted here so the writer does not.
    var occurredAtText: String?
    var expectedVersion: ExpectedVersion
    /// `meta.correlation_id` when it is a string or an integer, for the correlation index.
    var correlationId: String?
}

/// A validation failure; the caller adds where (line, argument).
struct ValidationError: Error, CustomStringConvertible {
    var reason: String
    /// The line has no id and the ingest refuses such lines.
    var isMissingId = false
    var description: String { reason }
}

extension PreparedEvent {
    /// Validates an event given through the library or `audit append`.
    ///
    /// - Parameter engineRecord: the engine appends one of its own records
    ///   (`EngineRecords`), which nothing else may append: the code history and the
    ///   recorded query texts rely on them being the engine's.
    init(_ event: NewEvent, engineRecord: Bool = false) throws(ValidationError) {
        try self.init(
            id: event.id, stream: event.stream, type: event.type, data: event.data, meta: event.meta,
            occurredAt: event.occurredAt, expectedVersion: event.expectedVersion, engineRecord: engineRecord)
    }

    init(
        id: String?, stream: String, type: String, data: JSONValue, meta: JSONValue?,
        occurredAt: Timestamp?, expectedVersion: ExpectedVersion, engineRecord: Bool = false
    ) throws(ValidationError) {
        try Self.checkText(stream, field: "stream", max: EventLimits.maxStreamBytes)
        try Self.checkText(type, field: "type", max: EventLimits.maxTypeBytes)
        if !engineRecord, EngineRecords.contains(type: type, stream: stream) {
            throw ValidationError(
                reason: "a \"\(type)\" event on the stream \"\(stream)\" is a record the engine appends about itself (its builds on audit-code-…, the queries it ran on audit-query-…); give another stream or type")
        }
        if let id { try Self.checkText(id, field: "id", max: EventLimits.maxIdBytes) }
        guard case .object = data else {
            throw ValidationError(reason: "\"data\" must be a JSON object, not \(data.kindDescription)")
        }
        if let meta, case .object = meta {} else if let meta {
            throw ValidationError(reason: "\"meta\" must be a JSON object, not \(meta.kindDescription)")
        }
        if case .exactly(let n) = expectedVersion, n < 0 {
            throw ValidationError(reason: "\"expected_version\" must be 0 or more, \"none\" or \"any\"")
        }
        if let occurredAt, occurredAt < .min || occurredAt > .max {
            throw ValidationError(reason: "\"occurred_at\" is outside years 0000–9999")
        }
        // Every event stored stays readable by projections, whose reader stops there.
        let payloads: [(String, JSONValue?)] = [("data", data), ("meta", meta)]
        for (field, value) in payloads where value?.nests(deeperThan: JSONParser.maxDepth) == true {
            throw ValidationError(reason: "\"\(field)\" is nested more than \(JSONParser.maxDepth) levels")
        }
        self.id = id
        self.stream = stream
        self.type = type
        self.data = CanonicalJSON.string(data)
        self.meta = meta.map(CanonicalJSON.string) ?? "{}"
        self.occurredAt = occurredAt
        self.occurredAtText = occurredAt?.description
        self.expectedVersion = expectedVersion
        correlationId = CorrelationId.of(meta)
        if let correlationId, correlationId.utf8.contains(0) {
            throw ValidationError(reason: "\"meta.correlation_id\" must not contain U+0000 (NUL)")
        }
        if self.data.utf8.count > EventLimits.maxPayloadBytes {
            throw ValidationError(reason: "\"data\" is \(self.data.utf8.count) bytes, more than the limit of \(EventLimits.maxPayloadBytes)")
        }
        if self.meta.utf8.count > EventLimits.maxPayloadBytes {
            throw ValidationError(reason: "\"meta\" is \(self.meta.utf8.count) bytes, more than the limit of \(EventLimits.maxPayloadBytes)")
        }
    }

    /// Validates one JSONL line: a JSON object with the fields of CONTRACT §1.
    ///
    /// - Parameter missingId: called with the line's object when it has no id: the id
    ///   to give it, or nil to refuse the line.
    init(jsonLine bytes: UnsafeBufferPointer<UInt8>, missingId: (JSONValue) -> String?) throws(ValidationError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, outerLevels: 1)
        } catch {
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
                throw ValidationError(reason: "it starts with a UTF-8 byte order mark (EF BB BF), which JSON Lines does not allow: save the file as UTF-8 without it")
            }
            throw ValidationError(reason: error.isTooDeep ? "\(error)" : "not valid JSON: \(error)")
        }
        guard case .object(let members) = value else {
            throw ValidationError(reason: "an event must be a JSON object, not \(value.kindDescription)")
        }
        var stream: String?, type: String?, id: String?
        var data: JSONValue?, meta: JSONValue?
        var occurredAt: Timestamp?
        var expected = ExpectedVersion.any
        for member in members {
            switch member.key {
            case "stream": stream = try Self.requireString(member)
            case "type": type = try Self.requireString(member)
            case "data": data = member.value
            case "meta": if member.value != .null { meta = member.value }
            case "id": if member.value != .null { id = try Self.requireString(member) }
            case "occurred_at":
                if member.value != .null {
                    do {
                        occurredAt = try Timestamp(rfc3339: Self.requireString(member))
                    } catch let error as TimestampParseError {
                        throw ValidationError(reason: "\"occurred_at\": \(error)")
                    } catch {
                        throw error as! ValidationError
                    }
                }
            case "expected_version": expected = try Self.expectedVersion(member.value)
            case "seq", "version", "recorded_at", "hash":
                throw ValidationError(reason: "\"\(member.key)\" is assigned by the store and cannot be given")
            default:
                throw ValidationError(
                    reason: "unknown field \"\(member.key)\" (an event has stream, type, data, meta, occurred_at, id, expected_version)")
            }
        }
        guard let stream else { throw ValidationError(reason: "missing \"stream\"") }
        guard let type else { throw ValidationError(reason: "missing \"type\"") }
        guard let data else { throw ValidationError(reason: "missing \"data\" (use {} for an event without payload)") }
        if id == nil {
            guard let given = missingId(value) else {
                throw ValidationError(
                    reason: "the line has no \"id\", so ingesting the same input again would append its events again; give every line an id, or ingest with --derive-ids (ids from each line's content: idempotent) or --generate-ids (random ids: not idempotent)",
                    isMissingId: true)
            }
            id = given
        }
        try self.init(
            id: id, stream: stream, type: type, data: data, meta: meta, occurredAt: occurredAt,
            expectedVersion: expected)
    }

    private static func requireString(_ member: JSONMember) throws(ValidationError) -> String {
        guard case .string(let s) = member.value else {
            throw ValidationError(reason: "\"\(member.key)\" must be a string, not \(member.value.kindDescription)")
        }
        return s
    }

    private static func expectedVersion(_ value: JSONValue) throws(ValidationError) -> ExpectedVersion {
        switch value {
        case .null: return .any
        case .int(let n) where n >= 0: return .exactly(n)
        case .string("none"): return .noStream
        case .string("any"): return .any
        case .string(let s):
            // A number in a string ("5") is refused, not read: the contract's version is a number.
            var quoted: [UInt8] = []
            CanonicalJSON.writeString(s, into: &quoted)
            throw ValidationError(
                reason: "\"expected_version\" must be an integer 0 or more, \"none\" or \"any\", not the string \(String(decoding: quoted, as: UTF8.self))")
        default: break
        }
        throw ValidationError(reason: "\"expected_version\" must be an integer 0 or more, \"none\" or \"any\"")
    }

    private static func checkText(_ text: String, field: String, max: Int) throws(ValidationError) {
        if text.isEmpty { throw ValidationError(reason: "\"\(field)\" must not be empty") }
        let count = text.utf8.count
        if count > max {
            throw ValidationError(reason: "\"\(field)\" is \(count) bytes, more than the limit of \(max)")
        }
        // SQLite's and C's text functions end text at a NUL: a stream "a\u{0}b" would
        // be read back, looked up and versioned as stream "a".
        if text.utf8.contains(0) { throw ValidationError(reason: "\"\(field)\" must not contain U+0000 (NUL)") }
    }
}
