import GRDB

/// A state read back from a projection's table, checked before it is printed or put in
/// a snapshot: its key and state are text, and the state is one compact JSON object
/// (`CompactJSON`), as the engine writes every state. A row changed outside the engine
/// into anything else (a second line, a forged key after a `}`, text that is not JSON,
/// a blob) is refused, naming the projection and the key, and nothing is printed of it.
enum StoredState {
    /// The key and state of `row` (key, state) of `projection`'s table.
    /// - Throws: `IntegrityFailure` (exit 4) when the row is not as the engine writes one.
    static func checked(_ row: Row, projection: String) throws -> (key: String, state: String) {
        let key: DatabaseValue = row[0], state: DatabaseValue = row[1]
        guard case .string(let name) = key.storage else {
            throw damaged(projection, key: nil, "a key is stored as \(storageClass(key)), not text")
        }
        guard case .string(var text) = state.storage else {
            throw damaged(projection, key: name, "its state is stored as \(storageClass(state)), not text")
        }
        guard text.withUTF8({ CompactJSON.isObject(UnsafeRawBufferPointer($0)) }) else {
            throw damaged(projection, key: name, "its state is not one JSON object on one line")
        }
        return (name, text)
    }

    /// As `checked(_:projection:)`, for a key and state read as bytes; `textual`: both
    /// were stored as text.
    static func check(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer, textual: Bool, projection: String) throws {
        guard textual else {
            throw damaged(projection, key: String(decoding: key, as: UTF8.self), "its key or state is not stored as text")
        }
        guard CompactJSON.isObject(state) else {
            throw damaged(projection, key: String(decoding: key, as: UTF8.self), "its state is not one JSON object on one line")
        }
    }

    static func damaged(_ projection: String, key: String?, _ what: String) -> IntegrityFailure {
        var quoted: [UInt8] = []
        if let key { CanonicalJSON.writeString(key, into: &quoted) }
        let place = key == nil ? "" : ", key " + String(decoding: quoted, as: UTF8.self)
        let reason = "the table of projection \(projection) was changed outside audit\(place): \(what); "
            + "`audit replay --rebuild \(projection)` folds it again from the log"
        return IntegrityFailure(problems: [IntegrityProblem(seq: nil, reason: reason)], total: 1)
    }

    private static func storageClass(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return "NULL"
        case .int64: return "an integer"
        case .double: return "a real"
        case .string: return "text"
        case .blob: return "a blob"
        }
    }
}
