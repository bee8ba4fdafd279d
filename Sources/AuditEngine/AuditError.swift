/// What kind of failure an error is, which decides the command line's exit code.
public enum FailureCategory: Sendable, Equatable {
    /// Bad input: an event line, a projection script, a query (exit 65).
    case invalidInput
    /// An optimistic-concurrency conflict: the stream moved on (exit 3).
    case conflict
    /// Stored data does not match its hashes or its manifest (exit 4).
    case integrity
    /// Anything else: I/O, a missing database, SQLite failing (exit 1).
    case failure
}

/// An engine error a caller can act on: its category and a message that says what
/// was wrong and where.
public protocol AuditFailure: Error, CustomStringConvertible {
    var category: FailureCategory { get }
}
