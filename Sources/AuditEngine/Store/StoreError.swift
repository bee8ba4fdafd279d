/// One rejected line of an ingest, with the reason.
public struct LineError: Sendable, Equatable, CustomStringConvertible {
    /// 1-based line number in the input (0 when the input has no lines, e.g. `append`).
    public var line: Int
    public var reason: String
    /// Whether the reason is an optimistic-concurrency conflict.
    public var isConflict: Bool

    public init(line: Int, reason: String, isConflict: Bool = false) {
        self.line = line
        self.reason = reason
        self.isConflict = isConflict
    }

    public var description: String { "line \(line): \(reason)" }
}

/// Errors of the event store.
public enum StoreError: AuditFailure, Equatable {
    /// An event is not valid (empty stream, data not an object, bad time, …).
    case invalidEvent(reason: String)
    /// The stream's version is not the one the event expected.
    case versionConflict(stream: String, expected: Int64, actual: Int64)
    /// An id was sent again with different content.
    case idConflict(id: String, existingSeq: Int64)
    /// An ingest was rejected whole; nothing was appended. `source` names the input.
    case ingestRejected(source: String, errors: [LineError], moreErrors: Bool)
    /// The hash chain or the log's structure does not check out at `seq`.
    case integrity(seq: Int64, reason: String)
    /// No database at the path.
    case noDatabase(path: String)
    /// The database was written by a newer build with migrations this one lacks.
    case schemaTooNew(path: String, unknownMigrations: [String])
    /// SQLite or the file system failed.
    case storage(String)

    public var category: FailureCategory {
        switch self {
        case .invalidEvent, .idConflict: return .invalidInput
        case .versionConflict: return .conflict
        case .ingestRejected(_, let errors, _):
            return errors.first?.isConflict == true ? .conflict : .invalidInput
        case .integrity: return .integrity
        case .noDatabase, .schemaTooNew, .storage: return .failure
        }
    }

    public var description: String {
        switch self {
        case .invalidEvent(let reason):
            return "invalid event: \(reason)"
        case .versionConflict(let stream, let expected, let actual):
            return "version conflict on stream \"\(stream)\": expected version \(expected), but the stream is at version \(actual); re-read the stream and retry"
        case .idConflict(let id, let seq):
            return "event id \"\(id)\" was already stored at seq \(seq) with different content; ids must be unique (re-sending an id is only allowed with identical stream, type, data, meta and occurred_at)"
        case .ingestRejected(let source, let errors, let more):
            var lines = ["\(source): ingest rejected, nothing was appended"]
            lines += errors.map { "\(source):\($0.line): \($0.reason)" }
            if more { lines.append("\(source): (more errors not shown)") }
            return lines.joined(separator: "\n")
        case .integrity(let seq, let reason):
            return "integrity check failed at seq \(seq): \(reason)"
        case .noDatabase(let path):
            return "no audit database at \(path); run `audit init` there, or pass --db / set AUDIT_DB"
        case .schemaTooNew(let path, let unknown):
            return "the database \(path) was written by a newer version of audit (unknown migrations: \(unknown.joined(separator: ", "))); upgrade audit to open it"
        case .storage(let message):
            return message
        }
    }
}
