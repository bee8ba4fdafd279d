/// The canonical JSON text of a value: the one form the engine stores and hashes.
///
/// Rules, so the same value always gives the same bytes:
/// - object members sorted by the UTF-8 bytes of their keys; no whitespace;
/// - integers as decimal integers; other numbers in the shortest form that reads
///   back to the same `Double` (`31.3`, `1e-07`, `100.0` — a float stays a float);
/// - strings as UTF-8, escaping only `"`, `\` and control characters.
///
/// - Complexity: O(n log n) in the members of the largest object, O(n) otherwise.
public enum CanonicalJSON {
    /// The canonical text of `value`.
    public static func string(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        write(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the canonical text of `value` to `out`.
    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d): writeDouble(d, into: &out)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let sorted = members.count < 2 ? members : members.sorted { keyPrecedes($0.key, $1.key) }
            for (i, member) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The canonical order of object keys: by their UTF-8 bytes.
    @inlinable
    package static func keyPrecedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Appends a finite double in its shortest round-trip form. Callers reject NaN and
    /// infinities before they get here (JSON cannot express them).
    package static func writeDouble(_ d: Double, into out: inout [UInt8]) {
        precondition(d.isFinite, "canonical JSON has no NaN or infinity")
        out.append(contentsOf: d.description.utf8)
    }

    /// Appends `s` as a JSON string literal.
    package static func writeString(_ s: String, into out: inout [UInt8]) {
        writeString(utf8: s.utf8, into: &out)
    }

    /// Appends the UTF-8 text `bytes` as a JSON string literal.
    package static func writeString(utf8 bytes: some Sequence<UInt8>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
