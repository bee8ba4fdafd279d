import Foundation
import Testing

@testable import AuditEngine

/// `EventStore.committedEvents` and `ProjectionFollower`, in one process: the appends
/// come through a second store on the same file, as another process's would.
@Suite("Following committed events")
struct FollowTests {
    static func appendTyped(_ store: EventStore, _ range: Range<Int>) throws {
        for i in range {
            let type = i % 3 == 0 ? "A" : "B"
            try store.append(NewEvent(stream: "s-\(i % 4)", type: type, data: .object([JSONMember("i", .int(Int64(i)))])))
        }
    }

    /// Collects `count` events of `sequence`, failing after `seconds`.
    static func collect(_ sequence: CommittedEvents, count: Int, seconds: Double = 20) async throws -> [StoredEvent] {
        try await withThrowingTaskGroup(of: [StoredEvent].self) { group in
            group.addTask {
                var events: [StoredEvent] = []
                for try await event in sequence {
                    events.append(event)
                    if events.count == count { break }
                }
                return events
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return []
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }

    @Test("the sequence gives the events a filter selects, stored ones from fromSeq first, then each as it is committed")
    func filtered() async throws {
        let dir = TempDir()
        let store = try dir.store()
        try Self.appendTyped(store, 0..<10)
        let writer = try EventStore(path: store.path)
        let filters = [
            EventFilter(type: "B", fromSeq: 4),
            EventFilter(stream: "s-1", fromSeq: 1),
            EventFilter(stream: "s-2", type: "A", fromSeq: 1),
        ]
        async let appended: Void = {
            try await Task.sleep(for: .milliseconds(50))
            for chunk in 0..<5 {
                try Self.appendTyped(writer, (10 + chunk * 6)..<(16 + chunk * 6))
                try await Task.sleep(for: .milliseconds(10))
            }
        }()
        var results: [[StoredEvent]] = []
        for filter in filters {
            // How many the whole log (40 events) will hold for it.
            let expectedCount = (1...40).filter { seq in
                let i = seq - 1
                return seq >= filter.fromSeq! && filter.type.map { $0 == (i % 3 == 0 ? "A" : "B") } ?? true
                    && filter.stream.map { $0 == "s-\(i % 4)" } ?? true
            }.count
            results.append(try await Self.collect(store.committedEvents(filter), count: expectedCount))
        }
        try await appended
        for (filter, got) in zip(filters, results) {
            #expect(got == (try store.events(filter)), "\(filter)")
            #expect(!got.isEmpty)
        }
    }

    @Test("without fromSeq it starts at the head; toSeq and limit end it; a cancelled task ends it")
    func bounds() async throws {
        let dir = TempDir()
        let store = try dir.store()
        try Self.appendTyped(store, 0..<5)
        var fromNow = store.committedEvents(EventFilter()).makeAsyncIterator()
        try Self.appendTyped(store, 5..<7)
        #expect(try await fromNow.next()?.seq == 6)
        #expect(try await fromNow.next()?.seq == 7)
        var bounded: [Int64] = []
        for try await event in store.committedEvents(EventFilter(fromSeq: 3, toSeq: 6)) { bounded.append(event.seq) }
        #expect(bounded == [3, 4, 5, 6])
        var limited: [Int64] = []
        for try await event in store.committedEvents(EventFilter(type: "B", fromSeq: 1, limit: 3)) { limited.append(event.seq) }
        #expect(limited == [2, 3, 5])
        let waiting = Task {
            var n = 0
            for try await _ in store.committedEvents(EventFilter(stream: "none")) { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == 0)
    }

    @Test("a follower keeps a projection current while another connection appends, and stops with a checkpoint; states equal a clean replay")
    func follower() throws {
        let (w, log) = try Workspace.withOrderTotals(count: 3_000, streams: 300, seed: 7)
        let projection = try w.load("order_totals")
        var options = FollowOptions()
        options.replay.parallel = 2
        let follower = ProjectionFollower(store: w.store, projections: [projection], options: options)
        try follower.start()
        #expect(throws: StoreError.self) { try w.store.replay([projection]) }  // it holds the replay lock
        let writer = try EventStore(path: w.store.path)
        let more = orderLog(count: 2_000, streams: 300, seed: 8)
        for part in stride(from: 0, to: more.count, by: 100) {
            try writer.ingest(path: w.dir.jsonl("more-\(part).jsonl", Array(more[part..<part + 100])), missingIds: .generate)
            usleep(5_000)
        }
        // The head: 5,000 events and the CodeBuilt record of the build the follower promoted.
        let head = try w.store.head().seq
        #expect(try w.store.events(EventFilter(type: "CodeBuilt")).count == Int(head) - 5_000)
        let caughtUp = ContinuousClock.now + .seconds(30)
        while follower.status.first?.position != head, ContinuousClock.now < caughtUp { usleep(10_000) }
        let status = try #require(follower.status.first)
        #expect(status.position == head && status.lag == 0 && status.state == .following, "\(status)")
        #expect(try ReadModel.position(w, "order_totals") == head)  // checkpointed, before the stop
        follower.stop()
        let outcomes = try follower.wait()
        #expect(outcomes.map(\.position) == [head])
        #expect(outcomes.first?.status == .rebuilt)
        #expect(try w.dump("order_totals") == (try expectedOrderTotals(log + more)))
        _ = try w.store.replay([projection])  // the lock is free again
    }

    @Test("a follower refuses a store opened read-only")
    func readOnly() throws {
        let (w, _) = try Workspace.withOrderTotals(count: 10, streams: 2, seed: 1)
        let reader = try EventStore(path: w.store.path, access: .readOnly)
        let follower = ProjectionFollower(store: reader, projections: [try w.load("order_totals")])
        #expect { try follower.start() } throws: { error in
            "\(error)".contains("opened read-only, and following writes the projections' tables")
        }
    }
}

extension ReadModel {
    /// The live table's position in the catalog.
    static func position(_ w: Workspace, _ name: String) throws -> Int64? {
        try w.store.readTransaction { db in try record(db, name: name, build: false)?.position }
    }
}

/// The program of docs/library.md, "Following the log", as it is printed there (with
/// the workspace's paths): it compiles against the API and runs as described.
@Suite("Library example: following the log")
struct FollowLibraryExampleTests {
    @Test("the follower and the sequence of docs/library.md")
    func libraryExample() async throws {
        let dir = TempDir()
        let path = dir.file("follow-example.db")
        let store = try EventStore(path: path, create: true)
        let follower = ProjectionFollower(
            store: store, projections: try Projection.loadAll(directory: repositoryRoot + "/projections").map { try $0.get() })
        try follower.start()
        let printer = Task {
            var seen: [Int64] = []
            for try await event in store.committedEvents(EventFilter(type: "Payment", fromSeq: 1, limit: 5)) { seen.append(event.seq) }
            return seen
        }
        let writer = try EventStore(path: path)
        let last = try writer.ingest(path: exampleLog("road-fines.jsonl")).lastSeq
        #expect(try await printer.value == (try store.events(EventFilter(type: "Payment", limit: 5))).map(\.seq))
        while (follower.status.first { $0.projection == "fine_balances" }?.position ?? 0) < last {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Past `last`: the builds the follower promoted after the ingest began appended their records.
        let head = try store.head().seq
        let current = ContinuousClock.now + .seconds(30)
        while !follower.status.allSatisfy({ $0.position == head }), ContinuousClock.now < current {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(follower.status.allSatisfy { $0.position == head && $0.lag == 0 && $0.state == .following }, "\(follower.status)")
        follower.stop()
        let outcomes = try follower.wait()
        #expect(outcomes.count == follower.status.count)
        #expect(outcomes.allSatisfy { $0.position == head })
    }
}
