/// A projection that could not be loaded or failed while folding events.
public struct ProjectionError: AuditFailure, Equatable {
    public var projection: String
    /// The event being folded when it failed, if any.
    public var seq: Int64?
    public var message: String

    public init(projection: String, seq: Int64? = nil, message: String) {
        self.projection = projection
        self.seq = seq
        self.message = message
    }

    public var category: FailureCategory { .invalidInput }

    public var description: String {
        if let seq { return "projection \(projection) failed at seq \(seq): \(message)" }
        return "projection \(projection): \(message)"
    }
}
