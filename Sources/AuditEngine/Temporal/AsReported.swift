import GRDB

/// The code a read `--as-reported K` folds with: for each projection, the build that was
/// live at system time K — the newest whose `CodeBuilt` record was appended at or before
/// K, which is when it replaced the table before it (DECISIONS 15).
public struct ReportedBuild: Sendable, Equatable {
    public var build: ProjectionBuild
    /// The engine version that made the build, as its `CodeBuilt` record says.
    public var engineVersion: String?
    /// When its table went live (its record's `recorded_at`).
    public var liveFrom: String
}

extension EventStore {
    /// The build of each projection that was live at `time`, by name. A projection with
    /// no build recorded by then (built later, or before this database kept its code)
    /// is absent.
    ///
    /// - Complexity: one pass over the recorded builds (a few rows per projection).
    public func buildsLive(at time: Timestamp) throws -> [String: ReportedBuild] {
        try readTransaction { db in
            var live: [String: ReportedBuild] = [:]
            for build in try CodeHistory.builds(db) {
                guard let row = try Row.fetchOne(
                    db, sql: "SELECT recorded_at, data FROM events WHERE seq = ? AND type = ?", arguments: [build.eventSeq, CodeHistory.eventType])
                else { continue }
                let recordedAt: String = row["recorded_at"]
                guard recordedAt <= time.description else { continue }
                let data = try? JSONParser.parse(row["data"] as String)
                live[build.projection] = ReportedBuild(build: build, engineVersion: data?["engine_version"]?.stringValue, liveFrom: recordedAt)
            }
            return live
        }
    }

    /// The projections as the builds live at `time` define them, loaded from the stored
    /// code, and a sentence for each build an engine of another version made (its
    /// sandbox may have behaved differently).
    ///
    /// - Throws: `StoreError.integrity` when stored code does not check out;
    ///   `ProjectionError` when it does not load in this engine.
    public func reportedProjections(
        at time: Timestamp, defaultLimits: LuaLimits = .default
    ) throws -> (projections: [Projection], builds: [String: ReportedBuild], notes: [String]) {
        let live = try buildsLive(at: time)
        var projections: [Projection] = []
        var notes: [String] = []
        for name in live.keys.sorted() {
            let reported = live[name]!
            projections.append(try storedProjection(reported.build, defaultLimits: defaultLimits))
            if let version = reported.engineVersion, version != EngineVersion.current {
                notes.append("\(name): its build live at \(time) was made by audit \(version), this is \(EngineVersion.current): the sandbox's semantics may have changed since")
            }
        }
        return (projections, live, notes)
    }
}
