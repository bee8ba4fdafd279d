import AuditEngine
import Foundation

extension AuditCommand.Replay {
    /// The store, writable: following writes the projections' tables.
    func openStoreToFollow() throws -> EventStore {
        do {
            return try openStore(global)
        } catch StoreError.readOnlyDatabase(let path, let reason) {
            throw StoreError.readOnlyDatabase(
                path: path,
                reason: reason + "; audit replay --follow keeps the projections' tables in it current, so it must write it: "
                    + "run it as a user (or on a copy) that may write the database and its folder (audit events --follow only reads)")
        }
    }

    /// `replay --follow`: replays, then folds each commit's events, until SIGINT/SIGTERM;
    /// prints the outcomes as `replay` does.
    func runFollowing(
        _ store: EventStore, _ projections: [Projection], loaded: [Result<Projection, ProjectionError>], options: ReplayOptions
    ) throws {
        if projections.isEmpty { return try report([], loaded: loaded) }
        var follow = FollowOptions()
        follow.replay = options
        // A changed file is rebuilt beside its live table; a new one only as `replay` would.
        follow.folder = workspace.projections
        follow.newFiles = !names.isEmpty ? .ignore : add ? .build : .tell
        let follower = ProjectionFollower(store: store, projections: projections, options: follow)
        let signals = StopSignals { follower.stop() }
        try follower.start()
        let board = stderrIsTerminal ? StatusBoard() : nil
        var outcomes: [ReplayOutcome]?
        do {
            while outcomes == nil {
                outcomes = try follower.wait(seconds: 0.5)
                board?.show(follower.status)
            }
        } catch {
            board?.clear()
            throw error
        }
        board?.clear()
        withExtendedLifetime(signals) {}
        try report(outcomes!, loaded: loaded)
    }
}

/// On a terminal's stderr, one line per followed projection, rewritten in place.
final class StatusBoard {
    private var lines = 0

    func show(_ statuses: [FollowStatus]) {
        var text = lines > 0 ? "\u{1B}[\(lines)A" : ""
        for status in statuses { text += "\r" + Self.line(status) + "\u{1B}[K\n" }
        lines = statuses.count
        StandardStreams.writeTerminalControls(text)
    }

    func clear() {
        guard lines > 0 else { return }
        StandardStreams.writeTerminalControls("\u{1B}[\(lines)A\r\u{1B}[J")
        lines = 0
    }

    /// `order_totals  following  seq 1200 of 1204  lag 4  512 events/s`, and when new
    /// code is built beside it, `  new code: building, seq 300`.
    static func line(_ status: FollowStatus) -> String {
        let state: String
        switch status.state {
        case .catchingUp: state = "catching up"
        case .following: state = "following"
        case .building: state = "building"
        case .failed(let error): state = "failed at seq \(error.seq.map(String.init) ?? "?")"
        }
        var build = ""
        switch status.build?.state {
        case .building?: build = "  new code: building, seq \(status.build!.position)"
        case .failed(let error)?: build = "  new code: failed\(error.seq.map { " at seq \($0)" } ?? "")"
        default: break
        }
        return "\(status.projection)  \(state)  seq \(status.position) of \(status.head)  lag \(status.lag)  "
            + String(format: "%.0f events/s", status.eventsPerSecond) + build
    }
}
