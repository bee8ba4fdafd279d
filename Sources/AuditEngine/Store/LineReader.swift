import Foundation

/// Reads lines from a file descriptor in large chunks, without loading the input whole.
///
/// - Complexity: memory is one chunk plus the longest line; each byte is copied once.
struct LineReader {
    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    private(set) var lineNumber = 0

    init(fileDescriptor fd: Int32, chunkSize: Int = 1 << 20) {
        self.fd = fd
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    enum ReadError: Error, CustomStringConvertible {
        case lineTooLong(line: Int)
        case io(String)

        var description: String {
            switch self {
            case .lineTooLong(let line): return "line \(line) is longer than the limit of \(EventLimits.maxLineBytes) bytes"
            case .io(let reason): return reason
            }
        }
    }

    /// Calls `body` with the next line's bytes (without the newline or a trailing CR)
    /// and its 1-based number;
    /// returns false at the end of the input.
    mutating func next<T>(_ body: (UnsafeBufferPointer<UInt8>, Int) throws -> T) throws -> T? {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 0x0A) {
                lineNumber += 1
                var lineEnd = newline
                if lineEnd > start, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                let lineStart = start
                start = newline + 1
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd]), lineNumber) }
            }
            if eof {
                guard start < end else { return nil }
                lineNumber += 1
                let lineStart = start, lineEnd = end
                start = end
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd]), lineNumber) }
            }
            try fill()
        }
    }

    private mutating func fill() throws {
        if start > 0 {
            // Move the partial line to the front.
            let remaining = end - start
            buffer.withUnsafeMutableBufferPointer { b in
                _ = memmove(b.baseAddress!, b.baseAddress! + start, remaining)
            }
            start = 0
            end = remaining
        }
        if end == buffer.count {
            guard buffer.count < EventLimits.maxLineBytes + 2 else { throw ReadError.lineTooLong(line: lineNumber + 1) }
            buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
        }
        let n = buffer.withUnsafeMutableBufferPointer { b in
            read(fd, b.baseAddress! + end, b.count - end)
        }
        if n < 0 { throw ReadError.io(String(cString: strerror(errno))) }
        if n == 0 { eof = true } else { end += n }
    }
}
