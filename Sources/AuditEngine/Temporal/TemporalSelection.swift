/// A point in time to answer a question at (CONTRACT §4): business time, system time,
/// both, or neither (every event).
public struct TemporalSelection: Sendable, Equatable {
    /// Only events with `occurred_at <= asOf`.
    public var asOf: Timestamp?
    /// Only events with `recorded_at <= knownAt`.
    public var knownAt: Timestamp?

    public init(asOf: Timestamp? = nil, knownAt: Timestamp? = nil) {
        self.asOf = asOf
        self.knownAt = knownAt
    }

    /// Neither time given: the question is about now.
    public var isCurrent: Bool { asOf == nil && knownAt == nil }
}

/// How a temporal question is answered.
public struct TemporalOptions: Sendable {
    /// Start each projection from its newest usable snapshot; false folds from seq 1.
    public var useSnapshots = true
    /// VMs per projection keyed by stream (as for replay).
    public var parallel = 1
    /// Limits given for this read: each replaces that limit of every projection, the
    /// others stay each projection's own (`LuaLimitOverrides`).
    public var limits: LuaLimitOverrides?

    public init() {}
}
