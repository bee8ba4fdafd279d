/// A parsed JSON value that keeps what the engine needs to stay exact and fast.
///
/// - Integers that fit in 64 bits stay integers (`.int`); every other number is a
///   `Double`, as in JSON's usual reading. This is what lets Lua receive integers as
///   integers and canonical state keep `1` distinct from `1.0`.
/// - Objects keep their members in an array, so their size is known without hashing:
///   building a Lua table can pass an exact size hint.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The value of `key` when this is an object, else nil. Linear in the member count.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Whether arrays and objects nest more than `limit` levels in it, the outermost
    /// included (as `JSONParser` counts them); looks no deeper than that.
    package func nests(deeperThan limit: Int) -> Bool {
        switch self {
        case .array(let elements): return limit == 0 || elements.contains { $0.nests(deeperThan: limit - 1) }
        case .object(let members): return limit == 0 || members.contains { $0.value.nests(deeperThan: limit - 1) }
        default: return false
        }
    }

    /// A short name of the value's kind, for error messages ("a number", "an array").
    public var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// One member of a JSON object.
public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}
