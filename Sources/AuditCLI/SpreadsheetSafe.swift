import ArgumentParser

/// `--spreadsheet-safe`: CSV for files people open in a spreadsheet, where a cell that
/// starts with `=`, `+`, `-` or `@` is run as a formula (DECISIONS 19). Numbers are
/// left alone; any other cell starting with one of those, a tab or a CR gets a `'`
/// in front, which the spreadsheet shows as text. The output is then no longer the
/// stored text, so exports (which must stay byte-faithful) do not offer it.
struct SpreadsheetOptions: ParsableArguments {
    @Flag(help: "With --format csv: put ' before cells starting with =, +, -, @, tab or CR (numbers aside), for spreadsheets.")
    var spreadsheetSafe = false

    /// Whether CSV cells are protected; a usage error with another format.
    func protects(_ format: OutputFormat) throws -> Bool {
        if spreadsheetSafe, format != .csv { throw UsageError("--spreadsheet-safe goes with --format csv") }
        return spreadsheetSafe
    }
}

enum SpreadsheetSafe {
    /// `cell`, with `'` in front when a spreadsheet would read it as a formula.
    static func cell(_ cell: String) -> String {
        guard let first = cell.utf8.first else { return cell }
        switch first {
        case UInt8(ascii: "="), UInt8(ascii: "@"), 0x09, 0x0D: return "'" + cell
        case UInt8(ascii: "+"), UInt8(ascii: "-"): return isNumber(cell) ? cell : "'" + cell
        default: return cell
        }
    }

    /// A decimal number as a spreadsheet reads one: `-5`, `+1.5`, `-2.5e-3`.
    static func isNumber(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        func digits() -> Int {
            let count = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }.count
            bytes = bytes.dropFirst(count)
            return count
        }
        var mantissa = digits()
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }
}
