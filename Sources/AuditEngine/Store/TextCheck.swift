/// Checks stored text the way `verify` must: as bytes, since SQLite hands text over
/// without checking it, and C's and SQLite's text functions end it at a NUL.
enum TextCheck {
    enum Finding: Equatable {
        case valid
        /// Valid UTF-8 holding U+0000, first at `offset`.
        case nul(offset: Int)
        /// Not UTF-8, first at `offset`.
        case invalidUTF8(offset: Int)

        /// What is wrong, of a named column ("its stream holds U+0000 at byte 3").
        func describe(_ column: String) -> String? {
            switch self {
            case .valid: return nil
            case .nul(let offset): return "its \(column) holds U+0000 (NUL) at byte \(offset + 1)"
            case .invalidUTF8(let offset): return "its \(column) is not UTF-8 (at byte \(offset + 1))"
            }
        }
    }

    /// The first problem of `bytes`: invalid UTF-8 (overlong forms, surrogates and
    /// code points past U+10FFFF included) wins over a NUL found earlier.
    ///
    /// - Complexity: O(n), eight bytes at a time while they are ASCII without NUL.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> Finding {
        guard let base = bytes.baseAddress else { return .valid }
        let count = bytes.count
        var nul: Int?
        var i = 0
        while i < count {
            if i + 8 <= count {
                let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let high: UInt64 = 0x8080_8080_8080_8080
                let hasZero = (word &- 0x0101_0101_0101_0101) & ~word & high
                if word & high == 0, hasZero == 0 {
                    i += 8
                    continue
                }
            }
            let byte = base.load(fromByteOffset: i, as: UInt8.self)
            if byte < 0x80 {
                if byte == 0, nul == nil { nul = i }
                i += 1
                continue
            }
            let length: Int
            var scalar: UInt32
            switch byte {
            case 0xC2...0xDF: length = 2; scalar = UInt32(byte & 0x1F)
            case 0xE0...0xEF: length = 3; scalar = UInt32(byte & 0x0F)
            case 0xF0...0xF4: length = 4; scalar = UInt32(byte & 0x07)
            default: return .invalidUTF8(offset: i)
            }
            guard i + length <= count else { return .invalidUTF8(offset: i) }
            for k in 1..<length {
                let next = base.load(fromByteOffset: i + k, as: UInt8.self)
                guard next & 0xC0 == 0x80 else { return .invalidUTF8(offset: i) }
                scalar = scalar << 6 | UInt32(next & 0x3F)
            }
            let minimum: UInt32 = length == 3 ? 0x800 : length == 4 ? 0x10000 : 0x80
            if scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar) {
                return .invalidUTF8(offset: i)
            }
            i += length
        }
        if let nul { return .nul(offset: nul) }
        return .valid
    }
}
