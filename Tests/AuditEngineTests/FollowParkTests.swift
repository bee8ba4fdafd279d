import Foundation
import Testing

@testable import AuditEngine

/// A follower of a projection with `on_error = "park"`: a poison event committed while
/// it follows parks its key, as `replay` would, and every other key goes on.
@Suite("Following a parking projection")
struct FollowParkTests {
    @Test("a poison event appended while following parks its key; the others stay current; the states equal a replay's")
    func parksWhileFollowing() throws {
        let w = try Workspace()
        w.projection("counts", """
            return {
              version = 1, on_error = "park",
              on = { T = function(s, e) s.n = (s.n or 0) + 1; if e.data.bad then error("poison") end end },
            }
            """)
        let projection = try w.load("counts")
        for i in 0..<20 { try w.store.append(NewEvent(stream: "s-\(i % 4)", type: "T", data: .object([]))) }
        let follower = ProjectionFollower(store: w.store, projections: [projection])
        try follower.start()
        let writer = try EventStore(path: w.store.path)
        try writer.append(NewEvent(stream: "s-1", type: "T", data: .object([JSONMember("bad", .bool(true))])))
        for i in 0..<8 { try writer.append(NewEvent(stream: "s-\(i % 4)", type: "T", data: .object([]))) }
        // The head moves on by the CodeBuilt record of the follower's first build.
        let deadline = ContinuousClock.now + .seconds(30)
        while follower.status.first?.position != (try w.store.head().seq), ContinuousClock.now < deadline { usleep(10_000) }
        let head = try w.store.head().seq
        let status = try #require(follower.status.first)
        #expect(status.position == head && status.state == .following, "\(status)")
        let parked = try w.store.parkedKeys(projection: "counts")
        #expect(parked.map(\.key) == ["s-1"], "\(parked)")
        follower.stop()
        _ = try follower.wait()
        let followed = try w.dump("counts")
        // s-1 holds its state before the poison event (5 events), the others all theirs.
        #expect(followed.contains(#"s-0 {"n":7}"#) && followed.contains(#"s-1 {"n":5}"#) && followed.contains(#"s-2 {"n":7}"#), "\(followed)")
        var rebuild = ReplayOptions()
        rebuild.rebuild = true
        _ = try w.store.replay([projection], options: rebuild)
        #expect(try w.dump("counts") == followed)
    }
}
