import AuditEngine
import Foundation

extension AuditCommand.Events {
    /// `events --follow`: the selected events as JSONL as they are committed, flushed
    /// after each read, until SIGINT/SIGTERM (exit 0), `--to-seq`/`--limit`, or stdout's
    /// reader going away (quietly, as with `events | head`).
    func printFollowing(_ filter: EventFilter, store: EventStore) throws {
        let signals = StopSignals()
        let tail = try EventTail(path: store.path, filter: filter)
        var out = Output()
        var idle = ContinuousClock.now
        while !signals.requested {
            guard let batch = try tail.poll() else { break }
            if batch.isEmpty {
                if ContinuousClock.now - idle > .milliseconds(100) {
                    if StandardStreams.outputClosed { throw OutputClosed() }
                    idle = ContinuousClock.now
                }
                usleep(2_000)
                continue
            }
            for event in batch { try out.line(event.jsonLine) }
            try out.flush()
        }
        try out.flush()
    }
}
