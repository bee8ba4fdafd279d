import Dispatch
import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// A state database whose writes the test controls: each can be held until released,
/// or fail.
private final class FakeStates: StateDatabase, @unchecked Sendable {
    let concurrentReads: Bool
    let queue = try! DatabaseQueue()
    /// Signalled by each write as it starts; a write then waits for `release`.
    let started = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let holds: Bool
    var failure: Error?
    private let lock = NSLock()
    private var _writes = 0
    var writes: Int { lock.withLock { _writes } }

    init(concurrentReads: Bool, holds: Bool) {
        self.concurrentReads = concurrentReads
        self.holds = holds
    }

    func readStates<T>(_ body: (Database) throws -> T) throws -> T { try queue.read(body) }

    func writeStates(_ body: (Database) throws -> Void) throws {
        started.signal()
        if holds { release.wait() }
        if let failure { throw failure }
        try queue.write(body)
        lock.withLock { _writes += 1 }
    }
}

private struct WriteFailed: Error {}

@Suite struct CheckpointWriterTests {
    @Test func aCheckpointCommitsWhileTheCallerGoesOnAndWaitCountsTheTimeWaited() throws {
        let states = FakeStates(concurrentReads: true, holds: true)
        let writer = CheckpointWriter(states: states, warn: { _ in })
        try writer.submit([])
        // submit returned while the write is held: it runs on another thread.
        states.started.wait()
        #expect(states.writes == 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { states.release.signal() }
        try writer.wait()
        #expect(states.writes == 1)
        #expect(writer.waited >= .milliseconds(40))
    }

    @Test func theNextCheckpointWaitsForTheOneInFlight() throws {
        let states = FakeStates(concurrentReads: true, holds: true)
        let writer = CheckpointWriter(states: states, warn: { _ in })
        try writer.submit([])
        states.started.wait()
        states.release.signal()
        try writer.submit([])
        // The first had committed before the second was sent.
        #expect(states.writes == 1)
        states.started.wait()
        states.release.signal()
        try writer.wait()
        #expect(states.writes == 2)
    }

    @Test func aFailedCheckpointThrowsAtTheNextWaitOnce() throws {
        let states = FakeStates(concurrentReads: true, holds: false)
        states.failure = WriteFailed()
        let writer = CheckpointWriter(states: states, warn: { _ in })
        try writer.submit([])
        #expect(throws: WriteFailed.self) { try writer.wait() }
        #expect(states.writes == 0)
        try writer.wait()  // nothing in flight any more
    }

    @Test func anAbandonedCheckpointStillFinishesBeforeTheWriterReturns() throws {
        let states = FakeStates(concurrentReads: true, holds: true)
        let writer = CheckpointWriter(states: states, warn: { _ in })
        try writer.submit([])
        states.started.wait()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { states.release.signal() }
        writer.abandon()
        #expect(states.writes == 1)
    }

    @Test func withoutConcurrentReadsACheckpointIsWrittenAtOnce() throws {
        let states = FakeStates(concurrentReads: false, holds: false)
        let writer = CheckpointWriter(states: states, warn: { _ in })
        try writer.submit([])
        #expect(states.writes == 1)
        #expect(writer.waited == .zero)
    }
}
