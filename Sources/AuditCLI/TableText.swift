/// Text as a `--format table` cell shows it: one line, no control characters, measured
/// in terminal columns.
enum TableText {
    /// `text` with every character that would move the cursor, end the line or reorder
    /// the text escaped: `\n`, `\r`, `\t`, other C0 and C1 controls and DEL as `\u{…}`,
    /// the line and paragraph separators U+2028/U+2029 and the bidirectional controls.
    static func escaped(_ text: String) -> String {
        replacing(text, where: needsEscape) { scalar in
            switch scalar {
            case "\n": return "\\n"
            case "\r": return "\\r"
            case "\t": return "\\t"
            default: return "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
    }

    /// `text` with each scalar for which `matches` holds replaced by `replacement(scalar)`.
    static func replacing(_ text: String, where matches: (Unicode.Scalar) -> Bool, with replacement: (Unicode.Scalar) -> String) -> String {
        guard text.unicodeScalars.contains(where: matches) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if matches(scalar) { out.append(contentsOf: replacement(scalar).unicodeScalars) } else { out.append(scalar) }
        }
        return String(out)
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x2028, 0x2029: return true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: return true  // bidirectional controls
        default: return false
        }
    }

    /// The columns a terminal gives `text` (after `escaped`): two for East Asian wide and
    /// fullwidth characters and emoji, none for combining marks and format characters.
    static func width(_ text: String) -> Int {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text.utf8.count }
        return text.reduce(0) { $0 + width($1) }
    }

    /// One grapheme cluster: as wide as its first scalar, or two when it is shown as an
    /// emoji (a variation selector 16, a regional-indicator flag).
    static func width(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        if scalars.contains(where: { $0.value == 0xFE0F }) { return 2 }
        if (0x1F1E6...0x1F1FF).contains(first.value) { return 2 }
        return width(first)
    }

    static func width(_ scalar: Unicode.Scalar) -> Int {
        let v = scalar.value
        if v < 0x300 { return v < 0x20 || (0x7F...0x9F).contains(v) ? 0 : 1 }
        if contains(DisplayWidthTable.zero, v) { return 0 }
        return contains(DisplayWidthTable.wide, v) ? 2 : 1
    }

    private static func contains(_ ranges: [(UInt32, UInt32)], _ value: UInt32) -> Bool {
        var low = 0, high = ranges.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if value < ranges[mid].0 {
                high = mid - 1
            } else if value > ranges[mid].1 {
                low = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    /// `text` cut to at most `columns` columns, the cut marked with `…`.
    static func truncated(_ text: String, columns: Int) -> String {
        guard width(text) > columns else { return text }
        var out = "", used = 0
        for character in text {
            let w = width(character)
            if used + w > columns - 1 { break }
            out.append(character)
            used += w
        }
        return out + "…"
    }

    /// `text` followed by spaces up to `columns` columns.
    static func padded(_ text: String, columns: Int) -> String {
        let missing = columns - width(text)
        return missing > 0 ? text + String(repeating: " ", count: missing) : text
    }
}
