/// A projection that could not be loaded or failed while folding events.
public struct ProjectionError: AuditFailure, Equatable {
    public var projection: String
    /// The event being folded when it failed, if any.
    public var seq: Int64?
    public var message: String
    /// Whether the same code and events always fail so (a handler's error, the
    /// instruction budget, the string size limit, a state that cannot be stored), or the
    /// failure depends on the machine (the CPU time and memory limits: DECISIONS 11).
    public var deterministic: Bool

    public init(projection: String, seq: Int64? = nil, message: String, deterministic: Bool = true) {
        self.projection = projection
        self.seq = seq
        self.message = message
        self.deterministic = deterministic
    }

    public var category: FailureCategory { .invalidInput }

    public var description: String {
        if let seq { return "projection \(projection) failed at seq \(seq): \(message)" }
        return "projection \(projection): \(message)"
    }
}
