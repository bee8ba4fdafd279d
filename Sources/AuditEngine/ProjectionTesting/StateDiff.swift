/// Path-level differences between an expected and an actual state, for test reports:
/// `order-1.total: expected 30, got 25`.
///
/// Values compare as canonical JSON does: `1` (an integer) and `1.0` (a float) differ,
/// as they are stored differently. Array positions are shown from 1, as Lua numbers them.
enum StateDiff {
    /// Every difference, in key order. With `partial`, fields the expected object does
    /// not list are not compared (at any depth of nested objects). An expected `null`
    /// means the field is absent: Lua's nil, since a state never holds null.
    static func differences(expected: JSONValue, actual: JSONValue, path: String, partial: Bool) -> [String] {
        var out: [String] = []
        compare(expected, actual, path, partial, &out)
        return out
    }

    private static func compare(_ expected: JSONValue, _ actual: JSONValue, _ path: String, _ partial: Bool, _ out: inout [String]) {
        switch (expected, actual) {
        case (.object(let e), .object(let a)):
            let actualByKey = Dictionary(a.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            let expectedKeys = Set(e.map(\.key))
            var keys = e.map(\.key)
            if !partial { keys += a.map(\.key).filter { !expectedKeys.contains($0) } }
            let expectedByKey = Dictionary(e.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            for key in keys.sorted(by: CanonicalJSON.keyPrecedes) {
                let child = path + member(key)
                switch (expectedByKey[key], actualByKey[key]) {
                case (let x?, let y?): compare(x, y, child, partial, &out)
                case (.null?, nil): break  // null: the field must be absent (a state never holds null)
                case (let x?, nil): out.append("\(child): expected \(show(x)), got nothing")
                case (nil, let y?): out.append("\(child): expected nothing, got \(show(y))")
                case (nil, nil): break
                }
            }
        case (.array(let e), .array(let a)):
            for i in 0..<max(e.count, a.count) {
                let child = "\(path)[\(i + 1)]"
                if i >= a.count {
                    out.append("\(child): expected \(show(e[i])), got nothing (the array has \(a.count) items, not \(e.count))")
                } else if i >= e.count {
                    out.append("\(child): expected nothing, got \(show(a[i])) (the array has \(a.count) items, not \(e.count))")
                } else {
                    compare(e[i], a[i], child, partial, &out)
                }
            }
        default:
            guard expected != actual else { return }
            var hint = ""
            switch (expected, actual) {
            case (.int(let i), .double(let d)) where Double(i) == d: hint = " (a float, not an integer: Lua's / always gives a float; use // or math.floor)"
            case (.double(let d), .int(let i)) where Double(i) == d: hint = " (an integer, not a float)"
            default: break
            }
            out.append("\(path): expected \(show(expected)), got \(show(actual))\(hint)")
        }
    }

    /// `.name` for identifier-like keys, else `["any key"]`.
    static func member(_ key: String) -> String {
        let identifier = key.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
            && key.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
        return identifier ? "." + key : "[" + CanonicalJSON.string(.string(key)) + "]"
    }

    /// A value as canonical JSON, cut at 100 characters.
    static func show(_ value: JSONValue) -> String {
        let text = CanonicalJSON.string(value)
        return text.count > 100 ? String(text.prefix(99)) + "…" : text
    }
}
