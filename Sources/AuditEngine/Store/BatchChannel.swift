import Foundation

/// A bounded, blocking hand-off of batches from one producer thread to one consumer.
///
/// Bounded so that a fast reader cannot run ahead of the writer and fill memory: the
/// producer waits while `capacity` batches are queued.
final class BatchChannel<Element: Sendable>: @unchecked Sendable {
    // @unchecked: every stored property is read and written only while `condition` is
    // locked, so the channel is safe to share between the two threads.
    private let condition = NSCondition()
    private var queue: [Element] = []
    private var closed = false
    private var cancelled = false
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Queues `element`, waiting for room; returns false when the consumer cancelled.
    func send(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity, !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(element)
        condition.broadcast()
        return true
    }

    /// No more elements will be sent.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// The consumer stops; a waiting producer wakes and learns it from `send`.
    func cancel() {
        condition.lock()
        cancelled = true
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// The next element, waiting for one; nil once closed and drained.
    func receive() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty, !closed { condition.wait() }
        if queue.isEmpty { return nil }
        let element = queue.removeFirst()
        condition.broadcast()
        return element
    }
}
