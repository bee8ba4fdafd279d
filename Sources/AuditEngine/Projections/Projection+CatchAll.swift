import GRDB

extension Projection {
    /// The handler key that receives every event whose type has no handler of its own:
    /// `on = { ["*"] = function(s, e) … end }`.
    public static let catchAllType = "*"

    /// Whether an `on["*"]` handler takes every type without a handler of its own. Such
    /// a projection is sent every event of the log (its streams and key still apply):
    /// replay cannot leave any type out of what it reads.
    public var handlesEveryType: Bool { handledTypes.contains(Projection.catchAllType) }

    /// Whether an event of `type` on `stream` reaches a handler. The engine's own
    /// records (`EngineRecords`) reach only a handler named for them.
    package func handles(_ type: String, stream: String) -> Bool {
        handledTypes.contains(type) || (handlesEveryType && !EngineRecords.contains(type: type, stream: stream))
    }

    /// Whether an event after `position` and at or before `head` reaches a handler of a
    /// projection that handles `handledTypes` (its streams aside), in `db`: when none
    /// does, its table is current at `head` without folding. One indexed lookup per type.
    static func lagReachesHandlers(_ db: Database, handledTypes: [String], position: Int64, head: Int64) throws -> Bool {
        guard position < head else { return false }
        if handledTypes.contains(catchAllType) {
            return try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM events WHERE seq > ? AND seq <= ? AND NOT \(EngineRecords.condition))",
                arguments: [position, head]) == true
        }
        for type in handledTypes {
            if try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM events WHERE type = ? AND seq > ? AND seq <= ?)",
                arguments: [type, position, head]) == true {
                return true
            }
        }
        return false
    }
}
