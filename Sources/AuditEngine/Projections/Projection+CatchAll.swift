extension Projection {
    /// The handler key that receives every event whose type has no handler of its own:
    /// `on = { ["*"] = function(s, e) … end }`.
    public static let catchAllType = "*"

    /// Whether an `on["*"]` handler takes every type without a handler of its own. Such
    /// a projection is sent every event of the log (its streams and key still apply):
    /// replay cannot leave any type out of what it reads.
    public var handlesEveryType: Bool { handledTypes.contains(Projection.catchAllType) }

    /// Whether events of `type` reach a handler.
    public func handles(_ type: String) -> Bool {
        handlesEveryType || handledTypes.contains(type)
    }
}
