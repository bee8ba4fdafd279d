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
    /// A filter cannot select anything as given (a text holding U+0000).
    case invalidFilter(reason: String)
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
    /// A file is at the path, but not an audit database (empty, not SQLite, or an
    /// SQLite database without the audit schema): `reason` says which.
    case notAuditDatabase(path: String, reason: String)
    /// The database was written by a newer build with migrations this one lacks.
    case schemaTooNew(path: String, unknownMigrations: [String])
    /// The database was made by an older build: only `audit init` (`EventStore.upgrade`)
    /// brings it up to date; until then it can only be read.
    case schemaTooOld(path: String)
    /// The database's schema is not the one the engine's migrations make (a table no
    /// longer STRICT, a dropped trigger, a view in place of `events`): reads that select
    /// by a column's value could pass over events in silence, so nothing but `verify`
    /// (and `verify-export`, which checks it itself) opens it.
    case schemaAltered(path: String, problems: [String])
    /// A writer cannot write the database; `reason` says what stops it.
    case readOnlyDatabase(path: String, reason: String)
    /// A read-only open found commits in the `-wal` file that it cannot read without
    /// creating the `-shm` file beside the database.
    case uncheckpointedCopy(path: String)
    /// A read without locks (`immutable`) saw the file change under it.
    case changedWhileRead(path: String)
    /// SQLite failed, running `sql` on the database.
    case sqlite(SQLiteFailure)
    /// The file system failed.
    case storage(String)

    public var category: FailureCategory {
        switch self {
        case .invalidEvent, .invalidFilter, .idConflict: return .invalidInput
        case .versionConflict: return .conflict
        case .ingestRejected(_, let errors, _):
            return errors.first?.isConflict == true ? .conflict : .invalidInput
        case .integrity, .schemaAltered: return .integrity
        case .noDatabase, .notAuditDatabase, .schemaTooNew, .schemaTooOld, .readOnlyDatabase, .uncheckpointedCopy,
             .changedWhileRead, .sqlite, .storage:
            return .failure
        }
    }

    public var description: String {
        switch self {
        case .invalidEvent(let reason):
            return "invalid event: \(reason)"
        case .invalidFilter(let reason):
            return "invalid filter: \(reason)"
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
        case .notAuditDatabase(let path, let reason):
            return "no audit database at \(path): \(reason)"
        case .schemaTooNew(let path, let unknown):
            return "the database \(path) was written by a newer version of audit (unknown migrations: \(unknown.joined(separator: ", "))); upgrade audit to open it"
        case .schemaTooOld(let path):
            return "the database at \(path) was made by an older audit; run audit init to upgrade it"
        case .schemaAltered(let path, let problems):
            let lead = "the schema was altered: "
            let shown = problems.prefix(3).map { $0.hasPrefix(lead) ? String($0.dropFirst(lead.count)) : $0 }.joined(separator: "; ")
            let more = problems.count > 3 ? "; and \(problems.count - 3) more" : ""
            return "integrity check failed: the schema of the database at \(path) was altered (\(shown)\(more)), so reads could pass over events; run audit verify"
        case .readOnlyDatabase(let path, let reason):
            return "the database at \(path) is read-only: \(reason)"
        case .uncheckpointedCopy(let path):
            return "the database at \(path) has commits in \(path)-wal that are not in the file itself yet, and reading them would create \(path)-shm beside it, which a read-only command never does; check a complete copy instead: sqlite3 \(path) \".backup copy.db\" (run where the files may be written), then audit --db copy.db …"
        case .changedWhileRead(let path):
            return "the database at \(path) was changed by a writer while it was read (it had no -wal file when opened, so it was read without locks); run the command again"
        case .sqlite(let failure):
            return failure.description
        case .storage(let message):
            return message
        }
    }
}
