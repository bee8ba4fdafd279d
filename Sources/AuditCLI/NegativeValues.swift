/// Joins `--option -1` into `--option=-1` before parsing, so that a negative number (or
/// a relative time such as `-7d`) given to an option reaches the option's own check
/// ("--limit must be 0 or more") instead of being read as an unknown option and
/// reported as "Missing value". No option's name starts with a digit, so nothing
/// else is changed; `--` ends the options, as always.
enum NegativeValues {
    static func join(_ arguments: [String]) -> [String] {
        var result: [String] = []
        result.reserveCapacity(arguments.count)
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                result += arguments[i...]
                break
            }
            if argument.hasPrefix("--"), argument.count > 2, !argument.contains("="), i + 1 < arguments.count,
               looksNegative(arguments[i + 1]) {
                result.append(argument + "=" + arguments[i + 1])
                i += 2
                continue
            }
            result.append(argument)
            i += 1
        }
        return result
    }

    /// `-` then a digit or `.`: `-1`, `-0.5`, `-7d`.
    private static func looksNegative(_ text: String) -> Bool {
        let bytes = text.utf8
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "-") else { return false }
        let second = bytes[bytes.index(after: bytes.startIndex)]
        return (second >= 0x30 && second <= 0x39) || second == UInt8(ascii: ".")
    }
}
