/// Whether bytes are one compact JSON object: well-formed (RFC 8259), valid UTF-8,
/// without whitespace outside strings, at most `maxDepth` levels deep — the shape of
/// every state the engine writes (canonical JSON is compact). A state read back from
/// a table is checked with it before it is printed or folded on, so that a row changed
/// outside the engine cannot add lines or keys to an answer (`StoredState`).
///
/// It does not check canonical form (member order, number spelling): a compact object
/// with other values is a changed state, which `audit verify --projections` finds.
enum CompactJSON {
    static let maxDepth = 1000

    static func isObject(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.first == UInt8(ascii: "{") else { return false }
        var scanner = Scanner(bytes: bytes)
        return scanner.value(depth: 0) && scanner.at == bytes.count
    }

    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var at = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        private var next: UInt8? { at < bytes.count ? bytes[at] : nil }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard next == byte else { return false }
            at += 1
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard let byte = next, depth < CompactJSON.maxDepth else { return false }
            switch byte {
            case UInt8(ascii: "{"):
                at += 1
                if take(UInt8(ascii: "}")) { return true }
                repeat {
                    guard string(), take(UInt8(ascii: ":")), value(depth: depth + 1) else { return false }
                } while take(UInt8(ascii: ","))
                return take(UInt8(ascii: "}"))
            case UInt8(ascii: "["):
                at += 1
                if take(UInt8(ascii: "]")) { return true }
                repeat {
                    guard value(depth: depth + 1) else { return false }
                } while take(UInt8(ascii: ","))
                return take(UInt8(ascii: "]"))
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
            default: return false
            }
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard bytes.count - at >= count else { return false }
            for i in 0..<count where bytes[at + i] != word.utf8Start[i] { return false }
            at += count
            return true
        }

        private mutating func digits() -> Bool {
            let start = at
            while let byte = next, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { at += 1 }
            return at > start
        }

        private mutating func number() -> Bool {
            _ = take(UInt8(ascii: "-"))
            if !take(UInt8(ascii: "0")) {
                guard let byte = next, byte >= UInt8(ascii: "1"), byte <= UInt8(ascii: "9") else { return false }
                _ = digits()
            }
            if take(UInt8(ascii: ".")), !digits() { return false }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard digits() else { return false }
            }
            return true
        }

        private mutating func string() -> Bool {
            guard take(UInt8(ascii: "\"")) else { return false }
            while let byte = next {
                switch byte {
                case UInt8(ascii: "\""):
                    at += 1
                    return true
                case UInt8(ascii: "\\"):
                    at += 1
                    guard let escaped = next else { return false }
                    at += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        break
                    case UInt8(ascii: "u"):
                        guard bytes.count - at >= 4 else { return false }
                        for _ in 0..<4 {
                            guard let hex = next, hex.isHexDigit else { return false }
                            at += 1
                        }
                    default: return false
                    }
                case 0..<0x20: return false
                case 0..<0x80: at += 1
                default: guard utf8Sequence() else { return false }
                }
            }
            return false
        }

        /// One multi-byte UTF-8 sequence at `at` (no overlong forms, no surrogates, at
        /// most U+10FFFF).
        private mutating func utf8Sequence() -> Bool {
            let lead = bytes[at]
            let count: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: count = 1
            case 0xE0: count = 2; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: count = 2
            case 0xED: count = 2; high = 0x9F
            case 0xF0: count = 3; low = 0x90
            case 0xF1...0xF3: count = 3
            case 0xF4: count = 3; high = 0x8F
            default: return false
            }
            guard bytes.count - at > count else { return false }
            for i in 1...count {
                let byte = bytes[at + i]
                guard byte >= (i == 1 ? low : 0x80), byte <= (i == 1 ? high : 0xBF) else { return false }
            }
            at += count + 1
            return true
        }
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9")) || (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "f"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "F"))
    }
}
