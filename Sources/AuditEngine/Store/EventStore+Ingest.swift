import Crypto
import Foundation

/// What an ingest did.
public struct IngestSummary: Sendable, Equatable {
    /// Events appended.
    public var appended: Int
    /// Events skipped because their id was stored with identical content.
    public var duplicates: Int
    /// The log's last seq after the ingest.
    public var lastSeq: Int64

    /// `{"appended":N,"duplicates":M,"last_seq":S}`
    public var json: String { "{\"appended\":\(appended),\"duplicates\":\(duplicates),\"last_seq\":\(lastSeq)}" }
}

/// What an ingest does with a line that has no `id`.
public enum MissingIds: Sendable, Equatable {
    /// Refuse the input, naming the first such line: ingesting it again would append
    /// its events again.
    case refuse
    /// Give each such line a random UUID. Not idempotent: ingesting the same input
    /// twice appends its events twice.
    case generate
    /// Give each such line the lower-case hex SHA-256 of its canonical JSON text, a
    /// line feed, and the decimal number of its occurrence in the input (1 for the
    /// first line with that text, 2 for the second, …). Idempotent: ingesting the same
    /// input again finds its events stored. But identical lines in two inputs are one
    /// event.
    case derive
}

extension EventStore {
    /// How many bad lines an ingest reports before it stops reading.
    public static let maxReportedLineErrors = 20

    /// Appends every event of a JSONL file atomically: all of them, or — on any bad
    /// line — none, with each bad line's number and reason in the error.
    ///
    /// - Parameters:
    ///   - path: a file, or `-` for standard input.
    ///   - missingIds: what to do with lines without an `id` (by default, refuse them).
    /// - Complexity: streams the input; memory stays flat as it grows (with `.derive`,
    ///   some 20 bytes per distinct line). Parsing and validation run on a second
    ///   thread while this one writes.
    /// - Throws: `StoreError.ingestRejected` naming the lines; nothing was appended.
    @discardableResult
    public func ingest(
        path: String, missingIds: MissingIds = .refuse, progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) throws -> IngestSummary {
        if path == "-" {
            return try ingest(
                fileDescriptor: FileHandle.standardInput.fileDescriptor, source: "<stdin>", missingIds: missingIds, progress: progress)
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw StoreError.storage("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        if fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFDIR {
            throw StoreError.storage("cannot read \(path): it is a directory; give a file of JSON lines, or - for standard input")
        }
        return try ingest(fileDescriptor: fd, source: path, missingIds: missingIds, progress: progress)
    }

    /// Appends every JSONL event read from `fd` atomically (see `ingest(path:)`).
    /// `source` names the input in error messages.
    /// `progress`, when given, is called about once a second while events are written.
    public func ingest(
        fileDescriptor fd: Int32, source: String, missingIds: MissingIds = .refuse,
        progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) throws -> IngestSummary {
        let clock = ContinuousClock.now
        var lastReport = clock
        let channel = BatchChannel<IngestBatch>(capacity: 8)
        // The parser reads `fd` until it stops: every return waits for it, so that the
        // caller may close `fd` (whose number the next open reuses) once this returns.
        let parsed = DispatchSemaphore(value: 0)
        let parser = Thread {
            IngestParser(fd: fd, channel: channel, missingIds: missingIds).run()
            parsed.signal()
        }
        parser.stackSize = 8 << 20  // JSON nesting recursion
        var started = false
        defer {
            if started {
                channel.cancel()
                parsed.wait()
            }
        }

        var lineErrors: [LineError] = []
        do {
            return try writeTransaction { db in
                // The lock and the chain head first: when they fail, no input was read.
                let writer = try EventWriter(db)
                parser.start()
                started = true
                while let batch = channel.receive() {
                    for item in batch.events {
                        do {
                            _ = try writer.write(item.event)
                        } catch let error as StoreError {
                            lineErrors.append(
                                LineError(line: item.line, reason: error.description, isConflict: error.category == .conflict))
                            throw IngestAborted()  // rolls the transaction back
                        }
                    }
                    lineErrors += batch.errors
                    if !lineErrors.isEmpty { throw IngestAborted() }
                    if let progress, ContinuousClock.now - lastReport >= .seconds(1) {
                        lastReport = ContinuousClock.now
                        progress(IngestProgress(
                            events: writer.appendedCount + writer.duplicateCount,
                            seconds: (ContinuousClock.now - clock).seconds))
                    }
                }
                try writer.finish()
                return IngestSummary(appended: writer.appendedCount, duplicates: writer.duplicateCount, lastSeq: writer.lastSeq)
            }
        } catch is IngestAborted {
            // Let the parser finish so that the report lists every bad line it finds
            // (it stops reading after the limit); then report them in line order.
            if lineErrors.contains(where: \.isConflict) {
                channel.cancel()
            } else {
                while let batch = channel.receive() { lineErrors += batch.errors }
            }
            lineErrors.sort { $0.line < $1.line }
            throw StoreError.ingestRejected(
                source: source, errors: Array(lineErrors.prefix(EventStore.maxReportedLineErrors)),
                moreErrors: lineErrors.count > EventStore.maxReportedLineErrors)
        } catch {
            channel.cancel()
            throw error
        }
    }
}

/// Thrown inside the ingest transaction to roll it back.
private struct IngestAborted: Error {}

/// Progress of an ingest.
public struct IngestProgress: Sendable {
    /// Events written (or found to be duplicates) so far.
    public var events: Int
    public var seconds: Double
}

/// A run of parsed lines handed from the parser thread to the writer.
struct IngestBatch: Sendable {
    var events: [(line: Int, event: PreparedEvent)] = []
    var errors: [LineError] = []
    var isLast = false
}

/// Reads, parses and validates JSONL on its own thread, feeding batches to the writer.
/// After the first bad line it sends no more events but keeps reading, so that one
/// run reports up to `EventStore.maxReportedLineErrors` bad lines.
struct IngestParser {
    let fd: Int32
    let channel: BatchChannel<IngestBatch>
    let missingIds: MissingIds
    static let batchSize = 512

    func run() {
        var reader = LineReader(fileDescriptor: fd)
        var batch = IngestBatch()
        var errorCount = 0
        var derived = DerivedIds()
        var missingIdReported = false
        let missingIds = self.missingIds
        func id(for line: JSONValue) -> String? {
            switch missingIds {
            case .refuse: return nil
            case .generate: return UUID().uuidString.lowercased()
            case .derive: return derived.id(for: line)
            }
        }
        batch.events.reserveCapacity(IngestParser.batchSize)
        func flush(last: Bool) -> Bool {
            batch.isLast = last
            let ok = channel.send(batch)
            batch = IngestBatch()
            batch.events.reserveCapacity(IngestParser.batchSize)
            return ok
        }
        func fail(_ line: Int, _ reason: String) {
            errorCount += 1
            if errorCount <= EventStore.maxReportedLineErrors + 1 {
                batch.errors.append(LineError(line: line, reason: reason))
            }
        }
        do {
            while true {
                let more: Bool? = try reader.next { bytes, line -> Bool in
                    if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }  // blank line
                    if bytes.count > EventLimits.maxLineBytes {
                        fail(line, "line is \(bytes.count) bytes, more than the limit of \(EventLimits.maxLineBytes)")
                        return true
                    }
                    do {
                        let event = try PreparedEvent(jsonLine: bytes, missingId: id(for:))
                        if errorCount == 0 { batch.events.append((line, event)) }
                    } catch let error as ValidationError {
                        // Only the first line without an id is named: it is a property
                        // of the whole input, not of each line.
                        if error.isMissingId, missingIdReported { return true }
                        missingIdReported = missingIdReported || error.isMissingId
                        fail(line, error.reason)
                    } catch {
                        fail(line, "\(error)")
                    }
                    return true
                }
                guard more != nil else { break }
                if errorCount > EventStore.maxReportedLineErrors { break }
                if batch.events.count >= IngestParser.batchSize || !batch.errors.isEmpty {
                    if !flush(last: false) { return }
                }
            }
        } catch LineReader.ReadError.lineTooLong(let line) {
            fail(line, "line is longer than the limit of \(EventLimits.maxLineBytes) bytes")
        } catch {
            fail(reader.lineNumber + 1, "cannot read input: \(error)")
        }
        _ = flush(last: true)
        channel.close()
    }
}

/// The ids `MissingIds.derive` gives lines, counting each text's occurrences.
struct DerivedIds {
    /// Occurrences so far, by the first 8 bytes of the SHA-256 of a line's canonical
    /// text. Two texts sharing a prefix share a count: their ids are still distinct
    /// (each hashes its own text) and the same for the same input.
    private var occurrences: [UInt64: UInt32] = [:]
    private var text: [UInt8] = []

    mutating func id(for line: JSONValue) -> String {
        text.removeAll(keepingCapacity: true)
        CanonicalJSON.write(line, into: &text)
        let key = SHA256.hash(data: text).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let occurrence = (occurrences[key] ?? 0) &+ 1
        occurrences[key] = occurrence
        text.append(0x0A)
        text.append(contentsOf: String(occurrence).utf8)
        return Hex.encode(Array(SHA256.hash(data: text)))
    }
}
