/// The events a filter selects, delivered as they are committed, by this process or
/// any other: `for try await event in store.committedEvents(…)`.
///
/// It starts at `filter.fromSeq` (events already stored are delivered first), or when
/// that is nil with the first event committed after the iteration began
/// (`makeAsyncIterator()`, which `for try await` calls first). It ends after
/// `filter.toSeq` or `filter.limit` events, or when the iterating task is cancelled;
/// otherwise it waits for commits for ever. The other conditions of `EventFilter`
/// (`stream`, `type`, `correlationId`, `asOf`, `knownAt`) select as in `events(_:)`.
///
/// Waiting costs one `PRAGMA data_version` on a connection of its own every
/// `pollInterval`, which reads no events: the log is read only after a commit, and only
/// past the last seq delivered. Each iteration has its own connection.
///
/// ```swift
/// for try await event in store.committedEvents(EventFilter(type: "Payment", fromSeq: 1)) {
///     print(event.seq, event.stream, event.data)
/// }
/// ```
public struct CommittedEvents: AsyncSequence, Sendable {
    public typealias Element = StoredEvent

    let path: String
    let filter: EventFilter
    let pollInterval: Duration
    let batchSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let pollInterval: Duration
        /// Made with the iterator, so that "from now" is when the iteration began.
        private let tail: Result<EventTail, any Error>
        private var buffered: [StoredEvent] = []
        private var next = 0

        init(sequence: CommittedEvents) {
            pollInterval = sequence.pollInterval
            tail = Result { try EventTail(path: sequence.path, filter: sequence.filter, batchSize: sequence.batchSize) }
        }

        /// The next event, waiting for it to be committed; nil at the end (see above).
        /// - Throws: `StoreError` when the database cannot be read.
        public mutating func next() async throws -> StoredEvent? {
            while next == buffered.count {
                if Task.isCancelled { return nil }
                guard let batch = try tail.get().poll() else { return nil }
                if batch.isEmpty {
                    do {
                        try await Task.sleep(for: pollInterval)
                    } catch {
                        return nil  // cancelled
                    }
                    continue
                }
                buffered = batch
                next = 0
            }
            defer { next += 1 }
            return buffered[next]
        }
    }
}

extension EventStore {
    /// The events `filter` selects, as they are committed (see `CommittedEvents`).
    ///
    /// - Parameters:
    ///   - pollInterval: how often it asks SQLite whether anything was committed.
    ///   - batchSize: events read at most per read transaction.
    public func committedEvents(
        _ filter: EventFilter = EventFilter(), pollInterval: Duration = .milliseconds(2), batchSize: Int = 1_000
    ) -> CommittedEvents {
        CommittedEvents(path: path, filter: filter, pollInterval: pollInterval, batchSize: batchSize)
    }
}
