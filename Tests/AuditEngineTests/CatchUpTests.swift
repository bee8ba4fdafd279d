import Foundation
import Testing

@testable import AuditEngine

/// Reads fold forward, never rebuild (DECISIONS 14), and wait for a replay that holds
/// the lock instead of folding beside it.
@Suite("Catch-up reads")
struct CatchUpTests {
    static let counter = "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }"

    func workspace() throws -> Workspace {
        let w = try Workspace()
        w.projection("counter", Self.counter)
        try w.ingest([eventLine(stream: "a", type: "T"), eventLine(stream: "a", type: "T")])
        try w.replay(["counter"])
        try w.ingest([eventLine(stream: "a", type: "T")])
        return w
    }

    func state(_ w: Workspace, _ options: CatchUpOptions) throws -> (String?, ReadPositions) {
        var found: String?
        let positions = try w.store.forEachState(projection: "counter", key: "a", current: options) { found = $1 }
        return (found, positions)
    }

    @Test("a read waits for the replay that holds the lock and answers once it brought the projection to the head")
    func waitsForHolder() throws {
        let w = try workspace()
        let head = try w.store.head().seq
        let (lock, _) = try ReplayLock.attempt(databasePath: w.store.path)
        let held = try #require(lock)
        let projection = try w.load("counter")
        let store = w.store
        let replayed = DispatchSemaphore(value: 0)
        // The holder replays 0.3 s later, then lets go of the lock (when `held` is released).
        nonisolated(unsafe) var holder: ReplayLock? = held
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
            _ = try? store.replay([projection], options: ReplayOptions(), holding: holder!)
            replayed.signal()
            Thread.sleep(forTimeInterval: 2)  // still held while the reader checks positions
            holder = nil
        }
        var options = CatchUpOptions()
        options.wait = 20
        let notes = Notes()
        options.note = { notes.add($0) }
        let started = ContinuousClock.now
        let (found, positions) = try state(w, options)
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(found == #"{"n":3}"#)
        #expect(positions.positions["counter"] == head && positions.head == head)
        #expect(notes.all.contains { $0.contains("waiting for the replay that holds the lock") && $0.contains("pid \(getpid())") })
        replayed.wait()
    }

    @Test("at the bound: CatchUpTimeout (exit 1) naming the holder and how far the projection is")
    func timesOut() throws {
        let w = try workspace()
        let (lock, _) = try ReplayLock.attempt(databasePath: w.store.path)
        #expect(lock != nil)
        var options = CatchUpOptions()
        options.wait = 0.2
        #expect {
            try withExtendedLifetime(lock) { _ = try state(w, options) }
        } throws: { error in
            guard let timeout = error as? CatchUpTimeout else { return false }
            return timeout.category == .failure && timeout.message.contains("counter at seq 3 of 4") && timeout.message.contains("pid \(getpid())")
        }
    }

    @Test("catching up never rebuilds: a table folded with the code that built it, positions equal to the head")
    func foldsForward() throws {
        let w = try workspace()
        // The folder's code changes: the read keeps the table's code, and says so.
        w.projection("counter", "return { on = { T = function(s, e) s.n = 100 end } }")
        var options = CatchUpOptions()
        options.folder = w.projectionsDir
        let notes = Notes()
        options.note = { notes.add($0) }
        let (found, positions) = try state(w, options)
        #expect(found == #"{"n":3}"#)
        #expect(positions.positions["counter"] == 4)  // 2 events, the CodeBuilt event, 1 more
        #expect(notes.all.count == 1 && notes.all[0].contains("differs from the code that built its table"))
        #expect(try w.store.projectionBuilds().count == 1)
    }

    @Test("a read-only store: the lag is folded into a scratch database, the store's table stays")
    func readOnlyScratch() throws {
        let w = try workspace()
        let readOnly = try EventStore(path: w.store.path, access: .readOnly)
        var found: String?
        let positions = try readOnly.forEachState(projection: "counter", key: "a", current: CatchUpOptions()) { found = $1 }
        #expect(found == #"{"n":3}"#)
        #expect(positions.positions["counter"] == 4)
        #expect(try w.dump("counter") == [#"a {"n":2}"#])
        #expect(try w.store.projectionRecords().live["counter"]?.position == 3)
    }
}

/// Notes told by a read, collected across threads.
final class Notes: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var notes: [String] = []  // guarded by `lock`
    func add(_ note: String) { lock.withLock { notes.append(note) } }
    var all: [String] { lock.withLock { notes } }
}
