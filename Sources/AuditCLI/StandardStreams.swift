import AuditEngine
import Foundation

/// The process's stdout and stderr, written with `write(2)`: stdout's errors are
/// reported, stderr's are ignored (there is nowhere left to report them), and neither
/// ever traps, as `FileHandle.write` does on an error.
enum StandardStreams {
    /// Puts `/dev/null` on each of descriptors 0, 1 and 2 that is closed (read-only on 0
    /// and 1, so that writes to a closed stdout still fail and are reported), before
    /// anything else is opened: otherwise the next file opened (a lock file, say) would
    /// get the number, and the output would be written into it.
    static func occupyClosedDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY)
            if opened >= 0, opened != fd {
                _ = dup2(opened, fd)
                _ = close(opened)
            }
        }
    }

    /// Writes all of `bytes` to stdout, after interruptions and short writes too.
    /// - Throws: `OutputClosed` when the reader went away (EPIPE), else `OutputFailure`.
    static func writeOut(_ bytes: UnsafeRawBufferPointer) throws {
        if let error = writeAll(1, bytes) {
            if error == EPIPE { throw OutputClosed() }
            throw OutputFailure(errno: error)
        }
    }

    static func writeOut(_ text: String) throws {
        var text = text
        try text.withUTF8 { try writeOut(UnsafeRawBufferPointer($0)) }
    }

    /// Writes `text` to stderr as far as it goes; a failing stderr changes nothing else
    /// (the exit code stays the one intended).
    /// Control characters other than newline and tab (a NUL, an escape sequence, a
    /// carriage return that an input line, stream or path carried into a message) are
    /// written as `\u0000`: a message never writes a raw control byte to a terminal.
    static func writeError(_ text: String) {
        var text = escapingControls(text)
        text.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    /// Writes `text` to stderr as it is: the terminal controls of a progress display,
    /// which the display makes itself.
    static func writeTerminalControls(_ text: String) {
        var text = text
        text.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    static func escapingControls(_ text: String) -> String {
        TableText.replacing(text, where: isEscaped) { scalar in
            let hex = String(scalar.value, radix: 16)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
    }

    private static func isEscaped(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }

    /// The errno that stopped the write, or nil when everything was written.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        guard let base = bytes.baseAddress else { return nil }
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, base + offset, bytes.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                return n < 0 ? errno : EIO  // 0 bytes written for a non-empty write: no progress is possible
            }
        }
        return nil
    }
}

/// Stdout's reader went away (EPIPE, `audit events | head`): the command stops quietly.
struct OutputClosed: Error {}

/// Stdout could not be written (a full disk, an I/O error, a closed descriptor): the
/// output is incomplete, so the command fails (exit 1).
struct OutputFailure: AuditFailure {
    var errno: Int32
    /// What the command had committed before its output failed (a write's result line).
    var committed: String?
    var category: FailureCategory { .failure }
    var description: String {
        "cannot write the output to stdout: \(DiskFull.reason(errno)); what was written is incomplete"
            + (committed.map { ", but \($0)" } ?? "")
    }
}

/// Prints the result line of a write that has committed. When stdout fails, the error
/// says what was committed, so that the lost line is not taken for a lost write (and
/// retried: an `append` without an id would be stored twice).
func printCommitted(_ line: String, _ committed: @autoclosure () -> String) throws {
    var out = Output()
    do {
        try out.line(line)
        try out.flush()
    } catch var failure as OutputFailure {
        failure.committed = committed()
        throw failure
    }
}
