import Foundation
import GRDB

/// One projection a follower keeps current, on the follower's thread only: the run on
/// its live table (with the code of the table's build) and, when the folder's code
/// differs, the run building that code beside it.
final class FollowedProjection {
    let name: String
    /// Folds the live table; nil while it has none (its first build is running), or
    /// when the code that built it is not recorded (a table older than the code history).
    var live: ProjectionRun?
    /// Builds the folder's newer code into `NAME__build`.
    var build: ProjectionRun?
    /// Why the folder's newest code could not be built (it does not load, or a handler
    /// failed at a seq); the live table goes on. Cleared by the next change.
    var buildFailure: ProjectionError?
    /// Where the failed build stopped, and the hash of its code.
    var buildPosition: Int64 = 0
    var buildHash: String?
    /// Where its build started, and how long its slices have folded so far: its replay
    /// stats (`audit projections`) once it is promoted.
    var buildFrom: Int64 = 0
    var buildSeconds = 0.0
    /// The hash of the folder's code as last read; nil once its file is gone.
    var folderHash: String?
    /// Its outcome so far: of the replay the follower began with, or of a promoted build.
    var outcome: ReplayOutcome?

    init(_ projection: Projection) {
        name = projection.name
        folderHash = projection.codeHash
    }

    /// The code hash of the live table, as followed.
    var liveHash: String? { live?.projection.codeHash }

    /// What `wait()` reports for it: as `replay` would, with what following added.
    var finalOutcome: ReplayOutcome? {
        guard outcome != nil || live != nil || build != nil || buildFailure != nil else { return nil }
        var result = outcome ?? ReplayOutcome(projection: name, status: .upToDate, position: 0, eventsApplied: 0)
        if let live {
            result.eventsApplied += live.eventsApplied
            if let failure = live.failure {
                result.status = .failed(failure)
                result.position = live.storedPosition
            } else {
                if result.status == .upToDate, live.position > live.startPosition { result.status = .updated }
                result.position = live.position
            }
        }
        if case .failed = result.status { return result }
        if let build {
            result.status = .building
            if live == nil { result.position = build.position }
        } else if let buildFailure {
            result.status = .failed(buildFailure)
        }
        return result
    }
}

/// When a follower looks at the projections folder, and what it said already.
final class CodeWatch {
    let folder: String
    private let files: FolderWatch
    private var lastCheck: ContinuousClock.Instant?
    /// New files it said it does not build, so that it says so once.
    var toldNew: Set<String> = []

    init(folder: String) {
        self.folder = folder
        files = FolderWatch(folder: folder)
    }

    /// Whether the folder is due to be looked at.
    func isDue(every interval: Duration) -> Bool {
        lastCheck.map { ContinuousClock.now - $0 >= interval } ?? true
    }

    /// When due, the paths whose files changed since the last look (nil: not due, or none).
    func due(every interval: Duration) -> Set<String>? {
        guard isDue(every: interval) else { return nil }
        lastCheck = ContinuousClock.now
        let changed = files.changedPaths()
        return changed.isEmpty ? nil : changed
    }
}

extension ProjectionFollower {
    /// Starts (or resumes, when an interrupted build of the same code left a
    /// checkpoint) the build of `projection` beside `slot`'s live table; with
    /// `rebuild`, from nothing. A projection whose VM cannot be made fails the build.
    func startBuild(_ slot: FollowedProjection, _ projection: Projection, rebuild: Bool) throws {
        var options = options.replay
        options.rebuild = rebuild
        options.toSeq = nil
        slot.build = nil
        do {
            slot.build = try store.writeTransaction { db in try store.buildRun(projection, db, options: options) }
            slot.buildFrom = slot.build!.startPosition
            slot.buildSeconds = 0
            slot.buildFailure = nil
        } catch let error as ProjectionError {
            buildFailed(slot, error, position: 0, hash: projection.codeHash)
        }
    }

    /// Records that the folder's newest code of `slot` cannot be built, and says so.
    func buildFailed(_ slot: FollowedProjection, _ error: ProjectionError, position: Int64, hash: String?) {
        slot.build = nil
        slot.buildFailure = error
        slot.buildPosition = position
        slot.buildHash = hash
        let live = slot.live == nil ? "it has no live table to serve meanwhile" : "its live table goes on with the code of its build"
        store.logger.warning("projection \(slot.name): its new code was not built: \(error); \(live); fix the file to build it again")
    }

    /// Folds the builds for about `buildSlice` seconds (each checkpointed at the end),
    /// then promotes those at `head`: their tables replace the live ones, whose runs
    /// go on with the new code.
    ///
    /// A slice ends between batches, so `batchSize` (events per batch) is sized from
    /// the builds' last rate to fill about half a slice: slow handlers get small
    /// batches, and the live tables wait at most about a slice.
    func buildSlice(_ followed: [FollowedProjection], head: Int64, options: ReplayOptions, batchSize: inout Int) throws {
        var sliced = options
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int64(self.options.buildSlice * 1000))
        sliced.shouldStop = { [weak self] in (self?.isStopping ?? true) || ContinuousClock.now >= deadline }
        sliced.progress = nil
        sliced.batchSize = batchSize
        let builds = followed.compactMap(\.build).filter { $0.isActive && $0.position < head }
        let from = builds.map(\.position).min() ?? head
        try store.pass(builds, end: head, selection: EventSelection(types: []), options: sliced, states: store)
        try restartParked(followed, \.build, options: sliced)
        let seconds = (ContinuousClock.now - started).seconds
        for slot in followed where slot.build.map({ run in builds.contains { $0 === run } }) ?? false {
            slot.buildSeconds += seconds
        }
        if let reached = builds.filter(\.isActive).map(\.position).min(), reached > from, seconds > 0 {
            let rate = Double(reached - from) / seconds
            batchSize = max(100, min(options.batchSize, Int(rate * self.options.buildSlice / 2)))
        }
        for slot in followed {
            guard let build = slot.build, let failure = build.failure else { continue }
            buildFailed(slot, failure, position: build.storedPosition, hash: build.projection.codeHash)
        }
        let promotable = followed.filter { $0.build.map { $0.isActive && $0.position >= head } ?? false }
        guard !promotable.isEmpty else { return }
        try store.promote(
            promotable.map { $0.build! },
            stats: Dictionary(promotable.map { ($0.name, (from: $0.buildFrom, seconds: $0.buildSeconds)) }, uniquingKeysWith: { a, _ in a }))
        for slot in promotable {
            let build = slot.build!
            let replaced = slot.live != nil
            slot.outcome = ReplayOutcome(projection: slot.name, status: .rebuilt, position: build.position, eventsApplied: build.eventsApplied)
            slot.build = nil
            slot.live = try liveRun(build.projection, options: options)
            if replaced {
                store.logger.warning("projection \(slot.name): the build of its new code reached the head (seq \(build.position)) and replaced its live table; it goes on with the new code")
            }
        }
        record(followed, head: head)
    }

    /// Acts on the files `paths` (relative to the folder) that changed: a projection
    /// whose code now differs is built beside its live table (a build of other code
    /// restarts), one whose file went or whose code is its table's again goes on
    /// without a build, and a new file is built or not as `options.newFiles` says.
    func codeChanged(_ paths: Set<String>, watch: CodeWatch, followed: inout [FollowedProjection]) throws {
        let folder = watch.folder
        var names = Set(paths.filter { !$0.hasPrefix("lib/") }.map { String($0.dropLast(4)) })
        if paths.contains(where: { $0.hasPrefix("lib/") }) { names.formUnion(followed.map(\.name)) }
        let limits = options.replay.limits.overDefaults
        for slot in followed where names.contains(slot.name) {
            let file = folder + "/" + slot.name + ".lua"
            guard FileManager.default.fileExists(atPath: file) else {
                guard slot.folderHash != nil else { continue }  // said already
                slot.folderHash = nil
                let gaveUp = slot.build == nil ? "" : "; the build of its new code is given up (its checkpoint stays)"
                slot.build = nil
                slot.buildFailure = nil
                store.logger.warning("projection \(slot.name): \(file) was removed; its live table goes on being folded with the code of its build\(gaveUp)")
                continue
            }
            let code: ProjectionCode
            do {
                code = try ProjectionCode.read(file: file, libDirectory: folder + "/lib")
            } catch let error as ProjectionError {
                slot.folderHash = nil  // read again once it changes
                buildFailed(slot, error, position: 0, hash: nil)
                continue
            }
            guard code.hash != slot.folderHash else { continue }  // touched, not changed
            slot.folderHash = code.hash
            if code.hash == slot.liveHash {
                if slot.build != nil || slot.buildFailure != nil {
                    try dropBuild(slot.name)
                    store.logger.warning("projection \(slot.name): its code in \(file) is its live table's again; the build of other code is given up")
                }
                slot.build = nil
                slot.buildFailure = nil
                continue
            }
            if slot.build?.projection.codeHash == code.hash { continue }
            do {
                let projection = try Projection.load(code: code, file: file, libDirectory: folder + "/lib", defaultLimits: limits)
                let restarted = slot.build != nil
                try startBuild(slot, projection, rebuild: false)
                guard slot.build != nil else { continue }
                store.logger.warning("projection \(slot.name): its code in \(file) changed\(restarted ? " again: its build restarts with the newest code" : ""); it is rebuilt beside its live table, which goes on with the code of its build until the new table reaches the head and replaces it")
            } catch let error as ProjectionError {
                buildFailed(slot, error, position: 0, hash: code.hash)
            }
        }
        guard options.newFiles != .ignore else { return }
        for name in names.sorted() where !followed.contains(where: { $0.name == name }) && !watch.toldNew.contains(name) {
            let file = folder + "/" + name + ".lua"
            guard FileManager.default.fileExists(atPath: file) else { continue }
            let holdsNone = try store.projectionRegistry().names.isEmpty
            guard options.newFiles == .build || holdsNone else {
                watch.toldNew.insert(name)
                store.logger.warning("projection \(name): \(file) is new; it is not built while following, since the database does not hold it: follow with --add, or stop and run `audit replay --add \(name)`")
                continue
            }
            do {
                let projection = try Projection.load(file: file, libDirectory: folder + "/lib", defaultLimits: limits)
                let slot = FollowedProjection(projection)
                try startBuild(slot, projection, rebuild: false)
                followed.append(slot)
                store.logger.warning("projection \(name): \(file) is new; it is built, then followed")
            } catch let error as ProjectionError {
                watch.toldNew.insert(name)
                store.logger.warning("projection \(name): \(file) is new and was not built: \(error)")
            }
        }
    }

    /// Drops the build table and catalog row of `name`.
    private func dropBuild(_ name: String) throws {
        try store.writeTransaction { db in
            try db.execute(sql: "DROP TABLE IF EXISTS \(ReadModel.quote(name + "__build"))")
            try db.execute(sql: "DELETE FROM projection_builds WHERE name = ?", arguments: [name])
        }
    }
}
