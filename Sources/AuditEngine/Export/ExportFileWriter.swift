import Crypto
import Foundation

/// Writes an export's data rows into files in one directory, hashing as it goes.
///
/// Rows go to `BASE-000001.EXT`, and a new file starts after `maxRows` rows. Each file
/// is fsynced when closed. What was written is `files`, with each file's rows, size and
/// SHA-256, in order.
final class ExportFileWriter {
    private let directory: String
    private let base: String
    private let format: ExportFormat
    private let header: String?
    private let maxRows: Int64
    private var current: OpenFile?
    private(set) var files: [ExportManifest.File] = []
    private(set) var rows: Int64 = 0

    private struct OpenFile {
        var name: String
        var fd: Int32
        var hasher = SHA256()
        var bytes: Int64 = 0
        var rows: Int64 = 0
        var buffer: [UInt8] = []
    }

    /// - Parameter header: the CSV header line (without its line end), written at the
    ///   top of every file.
    init(directory: String, base: String, format: ExportFormat, header: String?, maxRows: Int) {
        self.directory = directory
        self.base = base
        self.format = format
        self.header = header
        self.maxRows = Int64(max(1, maxRows))
    }

    /// Appends one row (without its line end).
    func row(_ text: String) throws {
        if current == nil || current!.rows >= maxRows { try startFile() }
        append(text)
        current!.rows += 1
        rows += 1
        if current!.buffer.count >= 1 << 16 { try flush() }
    }

    /// Closes the last file; with no rows at all, writes one empty file (a CSV header only).
    func finish() throws {
        if current == nil, files.isEmpty { try startFile() }
        try closeFile()
    }

    /// Writes a file that is not data (such as `query.sql`) and lists it.
    func write(name: String, contents: String) throws {
        try ExportFileWriter.writeFile(directory + "/" + name, Array(contents.utf8))
        files.append(ExportManifest.File(
            path: name, rows: nil, bytes: Int64(contents.utf8.count), sha256: Hex.encode(Array(SHA256.hash(data: Array(contents.utf8))))))
    }

    private func append(_ text: String) {
        current!.buffer.append(contentsOf: text.utf8)
        current!.buffer.append(0x0A)  // LF, as every other output of audit (readers of RFC 4180 accept it)
    }

    private func startFile() throws {
        try closeFile()
        let name = "\(base)-\(String(format: "%06d", files.filter { $0.rows != nil }.count + 1)).\(format.rawValue)"
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError("cannot create \(path): \(DiskFull.reason(errno))") }
        current = OpenFile(name: name, fd: fd)
        if let header { append(header) }
    }

    private func flush() throws {
        guard var file = current, !file.buffer.isEmpty else { return }
        file.hasher.update(data: file.buffer)
        try ExportFileWriter.writeAll(fd: file.fd, file.buffer, path: directory + "/" + file.name)
        file.bytes += Int64(file.buffer.count)
        file.buffer.removeAll(keepingCapacity: true)
        current = file
    }

    private func closeFile() throws {
        guard current != nil else { return }
        try flush()
        let file = current!
        current = nil
        guard fsync(file.fd) == 0 else {
            close(file.fd)
            throw ExportError("cannot sync \(directory)/\(file.name): \(DiskFull.reason(errno))")
        }
        close(file.fd)
        files.append(ExportManifest.File(
            path: file.name, rows: file.rows, bytes: file.bytes, sha256: Hex.encode(Array(file.hasher.finalize()))))
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ExportError("cannot write \(path): \(DiskFull.reason(errno))")
                }
                offset += n
            }
        }
    }

    /// Creates `path` (it must not exist) with `bytes`, fsynced.
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError("cannot create \(path): \(DiskFull.reason(errno))") }
        defer { close(fd) }
        try writeAll(fd: fd, bytes, path: path)
        guard fsync(fd) == 0 else { throw ExportError("cannot sync \(path): \(DiskFull.reason(errno))") }
    }

    /// Fsyncs a directory, so that the names in it (a rename, a new file) are durable.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
