import Foundation

/// The command line's arguments must be text: Swift would read invalid UTF-8 in one
/// as U+FFFD and so select, or store, something else than was typed.
enum ArgumentText {
    struct Problem {
        var message: String
        /// An option of `append`, whose values are an event's content (exit 65, else 64).
        var isEventContent: Bool
    }

    /// The first argument that is not UTF-8, named by its option.
    static func firstProblem(_ count: Int, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Problem? {
        var previous = ""
        var command: String?
        for index in 1..<max(1, count) {
            guard let pointer = argv[index] else { continue }
            let bytes = UnsafeRawBufferPointer(start: pointer, count: strlen(pointer))
            guard let text = String(validating: bytes, as: UTF8.self) else {
                let option: String
                if let equals = bytes.firstIndex(of: UInt8(ascii: "=")), bytes.starts(with: "--".utf8) {
                    option = "the value of " + String(decoding: bytes[..<equals], as: UTF8.self)
                } else if previous.hasPrefix("-") {
                    option = "the value of \(previous)"
                } else {
                    option = "argument \(index)"
                }
                return Problem(message: "\(option) is not valid UTF-8 text", isEventContent: command == "append")
            }
            if command == nil, !text.hasPrefix("-"), !previous.hasPrefix("--") || previous.contains("=") { command = text }
            previous = text
        }
        return nil
    }
}
