import Foundation

/// Lays `--help` and usage errors out for the terminal: ArgumentParser wraps the
/// discussion and the options, but never the usage line, which for most commands runs
/// past 80 columns. Write discussions as paragraphs (a line ending in `\` continues
/// it); this wraps the usage line between its options.
enum HelpLayout {
    /// `$COLUMNS`, else the terminal's width, else 80 — as ArgumentParser decides it.
    static func width() -> Int {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let columns = Int(text), columns > 0 { return columns }
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    /// `text` with each usage line ("USAGE: audit …", "Usage: audit …") wrapped to
    /// `columns`, continuation lines indented under the command's first option.
    static func wrapUsage(_ text: String, columns: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("USAGE: ") || line.hasPrefix("Usage: "), line.count > columns else { return String(line) }
            return wrap(String(line), columns: columns)
        }.joined(separator: "\n")
    }

    private static func wrap(_ line: String, columns: Int) -> String {
        let tokens = tokens(line)
        // "USAGE: audit schedule run" and the words up to the first option stay together.
        let head = tokens.prefix { !$0.hasPrefix("[") && !$0.hasPrefix("-") && !$0.hasPrefix("<") }
        var indent = head.joined(separator: " ").count + 1
        if indent > columns / 2 { indent = 9 }
        var lines: [String] = []
        var current = ""
        for token in tokens {
            if current.isEmpty {
                current = (lines.isEmpty ? "" : String(repeating: " ", count: indent)) + token
            } else if current.count + 1 + token.count <= columns {
                current += " " + token
            } else {
                lines.append(current)
                current = String(repeating: " ", count: indent) + token
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines.joined(separator: "\n")
    }

    /// The words of a usage line; a bracketed group (`[--db <path>]`) is one word.
    private static func tokens(_ line: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        var depth = 0
        for character in line {
            switch character {
            case "[", "<": depth += 1
            case "]", ">": depth = max(0, depth - 1)
            default: break
            }
            if character == " ", depth == 0 {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }
}
