import Foundation

/// Rewriting one line of a terminal in place, with an escape code only where the
/// terminal understands it: `TERM=dumb` (Emacs' shell, some CI logs) or no `TERM` gets
/// the line overwritten with spaces instead of `ESC [ K`.
enum TerminalLine {
    /// Whether `$TERM` names a terminal that takes ANSI escape codes.
    static let supportsEscapes = supportsEscapes(term: ProcessInfo.processInfo.environment["TERM"])

    static func supportsEscapes(term: String?) -> Bool {
        guard let term, !term.isEmpty else { return false }
        return term != "dumb"
    }

    /// Columns a line is blanked to without escape codes.
    static let plainWidth = 79

    /// The bytes that replace the current line with `text`.
    static func rewrite(_ text: String, escapes: Bool = supportsEscapes) -> String {
        escapes ? "\r\(text)\u{1B}[K" : "\r" + TableText.padded(text, columns: plainWidth)
    }

    /// The bytes that blank the current line and leave the cursor at its start.
    static func clear(escapes: Bool = supportsEscapes) -> String {
        escapes ? "\r\u{1B}[K" : "\r" + String(repeating: " ", count: plainWidth) + "\r"
    }
}
