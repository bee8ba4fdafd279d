import AuditEngine

/// What one event changed in a key's state, field by field: for `explain` and
/// `state --history`, whose full states are too wide to compare by eye.
struct StateChange: Equatable {
    /// The field's path from the state's top, `a.b.c` (array elements compare whole).
    var path: String
    /// The value before, nil when the field was absent.
    var old: JSONValue?
    /// The value after, nil when the event removed the field.
    var new: JSONValue?
}

enum StateChanges {
    /// The fields whose values differ, in key order; nested objects are followed.
    static func between(_ old: JSONValue?, _ new: JSONValue) -> [StateChange] {
        var changes: [StateChange] = []
        compare(old ?? .object([]), new, path: "", into: &changes)
        return changes
    }

    private static func compare(_ old: JSONValue?, _ new: JSONValue?, path: String, into changes: inout [StateChange]) {
        if case .object(let before)? = old, case .object(let after)? = new {
            var keys: [String] = []
            for member in before + after where !keys.contains(member.key) { keys.append(member.key) }
            for key in keys.sorted(by: CanonicalJSON.keyPrecedes) {
                let a = before.first { $0.key == key }?.value, b = after.first { $0.key == key }?.value
                compare(a, b, path: path.isEmpty ? key : path + "." + key, into: &changes)
            }
        } else if old == nil, case .object(let after)? = new, !after.isEmpty {
            // A new object: each of its fields is new.
            for member in after { compare(nil, member.value, path: path.isEmpty ? member.key : path + "." + member.key, into: &changes) }
        } else if old != new {
            changes.append(StateChange(path: path, old: old, new: new))
        }
    }

    /// `status: "open" → "paid", balance: 10 → 0, note: (none) → "x"`; long values cut.
    static func describe(_ changes: [StateChange]) -> String {
        guard !changes.isEmpty else { return "(no change)" }
        func text(_ value: JSONValue?) -> String {
            guard let value else { return "(none)" }
            let json = CanonicalJSON.string(value)
            return json.count > 40 ? String(json.prefix(39)) + "…" : json
        }
        return changes.map { "\($0.path): \(text($0.old)) → \(text($0.new))" }.joined(separator: ", ")
    }
}
