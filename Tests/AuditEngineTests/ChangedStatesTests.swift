import Testing

@testable import AuditEngine

/// The states a question's fold changed, kept in memory (`ChangedStates`): each key
/// once with its newest state, in key order; a key parked in place gets its last good
/// state, or none (the base's again).
@Suite("Changed states of a question")
struct ChangedStatesTests {
    private static func run(_ pairs: [(String, String)]) -> StateRun {
        var bytes: [UInt8] = []
        for (key, state) in pairs {
            Array(key.utf8).withUnsafeBytes { k in Array(state.utf8).withUnsafeBytes { StateRecords.append(k, $0, to: &bytes) } }
        }
        return bytes.withUnsafeBytes { StateRun(LuaVM.FlushedStates(records: $0, count: pairs.count)) }
    }

    private static func contents(_ changes: ChangedStates) -> [String] {
        var out: [String] = []
        changes.run?.forEach { key, state in
            out.append(String(decoding: key, as: UTF8.self) + "=" + String(decoding: state, as: UTF8.self))
        }
        return out
    }

    @Test("checkpoints add newer states over older ones; lookups find the newest")
    func adds() {
        let changes = ChangedStates()
        #expect(changes.state(of: "a") == nil)
        changes.add([Self.run([("b", "1"), ("a", "1")])])
        changes.add([Self.run([("c", "2"), ("a", "2")]), Self.run([("a", "3")])])
        #expect(Self.contents(changes) == ["a=3", "b=1", "c=2"])
        #expect(changes.state(of: "a") == "3")
        #expect(changes.state(of: "b") == "1")
        #expect(changes.state(of: "d") == nil)
    }

    @Test("replace: the keys named lose what they held; those given states get them, the others none")
    func replaces() {
        let changes = ChangedStates()
        changes.add([Self.run([("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")])])
        changes.replace(["b", "c", "x"], with: [(key: "c", state: "good"), (key: "x", state: "new")])
        #expect(Self.contents(changes) == ["a=1", "c=good", "d=1", "x=new"])
        #expect(changes.state(of: "b") == nil)
        #expect(changes.state(of: "c") == "good")
    }
}
