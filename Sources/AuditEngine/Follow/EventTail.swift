import GRDB

/// Reads the events a filter selects as they are committed: the engine of
/// `CommittedEvents` and `audit events --follow`.
///
/// Each `poll` asks the `CommitWatcher` whether anything was committed since the last
/// one; only then does it read the head, and the selected events after the last seq it
/// has seen: an idle tail never reads the log.
package final class EventTail {
    private let watcher: CommitWatcher
    private var filter: EventFilter
    /// The last seq looked at: the next events read are after it.
    package private(set) var position: Int64
    /// Events still to deliver under the filter's `limit`.
    private var remaining: Int
    /// The watcher's version when the log was last read up to its head.
    private var readVersion: Int64?
    private let batchSize: Int

    /// - Parameters:
    ///   - filter: which events; from `fromSeq` on, or when nil from the first event
    ///     committed after this call. `toSeq` and `limit` end the tail.
    ///   - batchSize: events read at most per `poll`.
    package init(path: String, filter: EventFilter, batchSize: Int = 1_000) throws {
        watcher = try CommitWatcher(path: path)
        self.filter = filter
        self.batchSize = max(1, batchSize)
        remaining = filter.limit.map { max(0, $0) } ?? Int.max
        if let from = filter.fromSeq {
            position = max(0, from - 1)
        } else {
            let version = try watcher.version()
            position = try watcher.head()
            readVersion = version
        }
    }

    /// Whether the tail has delivered everything it can (`toSeq` passed, or `limit` reached).
    package var isFinished: Bool {
        remaining == 0 || filter.toSeq.map { position >= $0 } ?? false
    }

    /// The selected events committed since the last call, in seq order, at most
    /// `batchSize`: empty when there are none (yet); nil once the tail is finished.
    package func poll() throws -> [StoredEvent]? {
        if isFinished { return nil }
        let version = try watcher.version()
        if version == readVersion { return [] }
        var events: [StoredEvent] = []
        var reachedEnd = true
        try watcher.read { db in
            let head = try ChainHead.seq(db)
            let end = min(head, filter.toSeq ?? head)
            guard end > position else { return }
            var window = filter
            window.fromSeq = position + 1
            window.toSeq = end
            window.limit = min(remaining, batchSize)
            var last = position
            try EventStore.forEachEvent(db, window) { event in
                events.append(event)
                last = event.seq
            }
            // A full batch may have more after it; otherwise everything up to `end` was seen.
            reachedEnd = events.count < window.limit!
            position = reachedEnd ? end : last
            remaining -= events.count
        }
        // Up to the head as of `version`: nothing more until the next commit (one made
        // while reading changed the version already).
        readVersion = reachedEnd ? version : nil
        return events
    }
}
