import CLuaSandbox
import Foundation

/// One event that changed a key's state, and the state after it.
public struct ExplainStep: Sendable {
    public var event: StoredEvent
    /// The key's state after this event, canonical JSON.
    public var state: String
}

extension EventStore {
    /// The events that built one key's state, in seq order, with the state after each:
    /// a from-scratch fold in a fresh VM that leaves the projection's tables alone.
    ///
    /// - Parameter filter: which events to consider (e.g. `asOf`, `toSeq`); the
    ///   projection's own types and streams apply as well.
    /// - Complexity: for projections keyed by stream, reads only that stream's events;
    ///   otherwise every event of the handled types.
    /// - Throws: `ProjectionError` naming the seq when a handler fails.
    public func explain(
        _ projection: Projection, key: String, filter: EventFilter = EventFilter(), _ body: (ExplainStep) throws -> Void
    ) throws {
        let vm = try projection.makeVM()
        vm.setEventFields(UInt32(AVM_FIELD_ALL))
        vm.assumeNoStoredStates(true)
        var selection = filter
        if projection.key == .stream { selection.stream = key }
        var steps: [ExplainStep] = []
        try forEachEvent(selection) { event in
            guard projection.handles(event.type, stream: event.stream) else { return }
            var copy = event
            let result: ApplyResult
            do {
                result = try copy.withAVMEvent { try vm.apply(&$0) }
            } catch {
                throw ProjectionError(projection: projection.name, seq: event.seq, message: "handler \"\(event.type)\": \(error)")
            }
            guard case .applied = result, vm.lastKey == key else { return }
            do {
                steps.append(ExplainStep(event: event, state: try vm.stateJSON(key: key) ?? "{}"))
            } catch {
                throw ProjectionError(projection: projection.name, seq: event.seq, message: "\(error)")
            }
        }
        for step in steps { try body(step) }
    }
}

extension StoredEvent {
    /// Calls `body` with an `avm_event` pointing at this event's fields.
    mutating func withAVMEvent<T>(_ body: (inout avm_event) throws -> T) rethrows -> T {
        var id = id, stream = stream, type = type, data = data, meta = meta
        var occurred = occurredAt.description, recorded = recordedAt.description
        let seq = seq, version = version
        return try id.withUTF8 { i in
            try stream.withCString { s in
                try type.withUTF8 { t in
                    try data.withUTF8 { d in
                        try meta.withUTF8 { m in
                            try occurred.withUTF8 { o in
                                try recorded.withUTF8 { r in
                                    func c(_ b: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar>? {
                                        UnsafeRawPointer(b.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
                                    }
                                    var event = avm_event(
                                        seq: seq, version: version, id: c(i), id_len: i.count, stream: s,
                                        stream_len: strlen(s), type: c(t), type_len: t.count, occurred_at: c(o),
                                        occurred_at_len: o.count, recorded_at: c(r), recorded_at_len: r.count,
                                        data: c(d), data_len: d.count, meta: c(m), meta_len: m.count)
                                    return try body(&event)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
