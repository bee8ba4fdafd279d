import Foundation
import GRDB

/// How a read brings the projections it reads up to date before answering (DECISIONS 14).
public struct CatchUpOptions: Sendable {
    /// Fold each projection read forward from its checkpoint first. False
    /// (`--no-catch-up`): answer from the tables as they are, saying how far each is behind.
    public var catchUp = true
    /// Seconds to wait, at most, for another process holding the replay lock to bring
    /// the projections read to the head seen at the start.
    public var wait: Double = 30
    /// The projections folder whose code is compared with the code that built each
    /// table (nil: no comparison).
    public var folder: String?
    /// Refuse to answer (exit 65) when the folder's code differs from the table's.
    public var strictCode = false
    /// Answer from a failed projection's last good state, saying so, instead of failing.
    public var staleOK = false
    /// On a store opened read-only: open the database for writing to fold the lag into
    /// its tables, when this process may write the file and its folder (else, and when
    /// false, the lag is folded into a scratch database and the file is not touched).
    /// A read that needs no catching up writes nothing either way.
    public var mayOpenForWriting = false
    /// Limits given for this read: each replaces that limit of the projections folded,
    /// the others stay their own (`LuaLimitOverrides`).
    public var limits: LuaLimitOverrides?
    /// Told each thing the reader should know: a lag, changed code, a wait, a stale answer.
    public var note: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// Where a read's answer comes from: the store's tables, or — on a store opened
/// read-only — a scratch database holding the projections read, caught up, in front
/// of the store (attached as `store`).
final class CurrentStates {
    /// The head the projections read were brought to (or were compared with).
    let head: Int64
    /// The seq each projection read is at, as answered from.
    let positions: [String: Int64]
    let scratch: TemporaryStates?
    /// The store to answer from: a writable one opened beside a read-only store to fold
    /// into its tables (`CatchUpOptions.mayOpenForWriting`), else nil (the store read).
    var store: EventStore?

    init(head: Int64, positions: [String: Int64], scratch: TemporaryStates?) {
        self.head = head
        self.positions = positions
        self.scratch = scratch
    }
}

/// A read gave up waiting for another process's replay (exit 1).
public struct CatchUpTimeout: AuditFailure {
    public var message: String
    public var category: FailureCategory { .failure }
    public var description: String { message }
}

extension EventStore {
    /// Brings `names` (live projections) up to date for a read, as `options` says, and
    /// says where to read them. Never rebuilds: a table is folded forward from its
    /// checkpoint with the code that built it (from the code history), whatever the
    /// folder holds now.
    ///
    /// - Complexity: when every projection read is at the head, one read transaction
    ///   and, with a folder, reading and hashing its files: no VM is made.
    /// - Throws: `ProjectionError` (exit 65) for a projection never built, a failed one
    ///   (without `staleOK`) and changed code (with `strictCode`); `CatchUpTimeout`
    ///   (exit 1) when another process's replay does not bring them up in time.
    func currentStates(_ names: [String], options: CatchUpOptions) throws -> CurrentStates {
        let start = try readTransaction { db in try ReadState(db, names: names) }
        for name in names where start.records[name] == nil {
            let build = try readTransaction { db in try ReadModel.record(db, name: name, build: true) }
            throw ProjectionError(projection: name, message: neverBuiltMessage(name, registry: start.registry, build: build))
        }
        try checkCode(names, start, options: options)
        // Behind only by events none of its handlers takes, a projection is current as
        // its table is; a store that is written moves its position (`skipUnhandled`) so
        // that the table says so too (an export's manifest records it).
        let behind = names.filter { start.records[$0]!.status == "ok" && start.records[$0]!.position < start.head }
        // Asked only when something is behind: a read of current tables makes no syscall for it.
        let opensWriter = options.catchUp && isReadOnly && options.mayOpenForWriting && !behind.isEmpty && Self.mayWrite(path)
        let writes = options.catchUp && (!isReadOnly || opensWriter)
        var lagging = behind.filter { writes || !start.currentUnfolded.contains($0) }
        if !options.catchUp || lagging.isEmpty {
            for name in lagging { options.note("\(name) is at seq \(start.records[name]!.position) of \(start.head)") }
            return try answered(names, head: start.head, scratch: nil, folded: start.currentUnfolded, read: start, options: options)
        }
        if opensWriter, let writer = try Self.currentWriter(path) {
            let states = try writer.currentStates(names, options: options)
            states.store = writer
            return states
        }
        if isReadOnly {
            let scratch = try TemporaryStates(storePath: path)
            let folded = try foldIntoScratch(lagging, start, scratch: scratch, options: options)
            return try answered(names, head: start.head, scratch: scratch, folded: folded.union(start.currentUnfolded), options: options)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(options.wait * 1000))
        var told = false
        while true {
            let (lock, holder) = try ReplayLock.attempt(databasePath: path)
            if let lock {
                try foldForward(lagging, options: options, lock: lock)
                break
            }
            let now = try readTransaction { db in try ReadState(db, names: lagging) }
            lagging = lagging.filter { now.records[$0]?.status == "ok" && now.records[$0]!.position < start.head }
            if lagging.isEmpty { break }
            let where_ = lagging.map { "\($0) at seq \(now.records[$0]!.position)" }.joined(separator: ", ")
            if ContinuousClock.now >= deadline {
                throw CatchUpTimeout(message: String(
                    format: "gave up after %g s waiting for the replay that holds the lock on %@%@: %@ of %lld; run the read again later, or with --no-catch-up to answer from the tables as they are",
                    options.wait, path, holder.isEmpty ? "" : " (\(holder))", where_, start.head))
            }
            if !told {
                options.note("waiting for the replay that holds the lock on \(path)\(holder.isEmpty ? "" : " (\(holder))") to bring \(where_) to seq \(start.head) (at most \(options.wait) s)")
                told = true
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try answered(names, head: start.head, scratch: nil, options: options)
    }

    /// The database at `path` opened for writing, or nil when an older build made it:
    /// only `audit init` upgrades (DECISIONS 1), so a read folds its lag into a scratch
    /// database instead.
    private static func currentWriter(_ path: String) throws -> EventStore? {
        do {
            return try EventStore(path: path)
        } catch StoreError.schemaTooOld {
            return nil
        }
    }

    /// Whether this process may write the database at `path` and its folder (SQLite
    /// writes a journal beside it).
    package static func mayWrite(_ path: String) -> Bool {
        let folder = (path as NSString).deletingLastPathComponent
        return Glibc.access(path, W_OK) == 0 && Glibc.access(folder.isEmpty ? "." : folder, W_OK) == 0
    }

    /// Folds `names` forward under `lock`: first past the events they do not handle
    /// (no VM), then with the code that built each table.
    private func foldForward(_ names: [String], options: CatchUpOptions, lock: ReplayLock) throws {
        let projections = try writeTransaction { db -> [Projection] in
            let head = try ChainHead.seq(db)
            var folding: [Projection] = []
            for name in names {
                guard let record = try ReadModel.record(db, name: name, build: false) else { continue }
                let build = try CodeHistory.build(db, name: name, codeHash: record.codeHash)
                if let build, try ReadModel.skipUnhandled(db, name: name, handledTypes: build.handledTypes, head: head) { continue }
                if let projection = try foldingCode(db, record: record, build: build, options: options) {
                    folding.append(projection)
                }
            }
            return folding
        }
        guard !projections.isEmpty else { return }
        var replay = ReplayOptions()
        replay.limits = options.limits
        _ = try self.replay(projections, options: replay, holding: lock)
    }

    /// The code to fold `record`'s table with: its build's stored code, or the folder's
    /// when no build was recorded and it is the same code. Nil (said): neither.
    private func foldingCode(_ db: Database, record: ProjectionRecord, build: ProjectionBuild?, options: CatchUpOptions) throws -> Projection? {
        if let projection = try tableCode(db, record: record, build: build, folder: options.folder, limits: options.limits.overDefaults) {
            return projection
        }
        options.note("\(record.name): the code that built its table was not recorded (it was built before the code history) and the folder's differs: it stays at seq \(record.position); `audit replay` rebuilds it")
        return nil
    }

    /// On a read-only store: `names`' tables copied into `scratch` and folded there
    /// from their positions to the head; the store is not written.
    ///
    /// - Complexity: copies each lagging table (its keys), then folds the lag.
    /// - Returns: the names folded to the head (a failed one, with `staleOK`, is not).
    private func foldIntoScratch(
        _ names: [String], _ start: ReadState, scratch: TemporaryStates, options: CatchUpOptions
    ) throws -> Set<String> {
        var runs: [ProjectionRun] = []
        for name in names {
            let record = start.records[name]!
            let build = try readTransaction { db in try CodeHistory.build(db, name: name, codeHash: record.codeHash) }
            guard let projection = try readTransaction({ db in try foldingCode(db, record: record, build: build, options: options) })
            else { continue }
            let target = ReadModelTarget(projection: name, kind: .temporary, columns: projection.columns)
            let columns = (["key", "state"] + projection.columns.map { ReadModel.quote($0.name) }).joined(separator: ", ")
            try scratch.writeStates { db in
                try db.execute(sql: target.createSQL)
                try db.execute(sql: "INSERT INTO main.\(target.quotedTable) (\(columns)) SELECT \(columns) FROM store.\(target.quotedTable)")
            }
            let run = try ProjectionRun(
                projection: projection, target: target, position: record.position, times: FoldedTimes(record),
                limits: options.limits, parallel: 1)
            try run.honourParked(readTransaction { try ParkedKeys.firstSeqs($0, liveOf: projection) }, restarts: false)
            run.origin = .table(schema: "store", table: name)  // a key parked in place is refolded from there
            runs.append(run)
        }
        var replay = ReplayOptions()
        replay.checkpointSeconds = .infinity  // nothing to resume: written once, at the end
        try pass(runs, end: start.head, selection: EventSelection(types: []), options: replay, states: scratch)
        for run in runs {
            guard let failure = run.failure else { continue }
            guard options.staleOK else { throw failure }
            options.note("\(failure) (folding into a scratch database: the store is read-only); answered from its table, at seq \(run.startPosition)")
        }
        return Set(runs.filter(\.isActive).map(\.projection.name))
    }

    /// The positions answered from, after a failed projection is refused (or, with
    /// `staleOK`, said to be stale) and a lag left is said.
    /// - Parameter read: the catalog as read at the start, when nothing was folded since.
    private func answered(
        _ names: [String], head: Int64, scratch: TemporaryStates?, folded: Set<String> = [], read: ReadState? = nil,
        options: CatchUpOptions
    ) throws -> CurrentStates {
        let now = try read ?? readTransaction { db in try ReadState(db, names: names) }
        var positions: [String: Int64] = [:]
        for name in names {
            guard let record = now.records[name] else { continue }
            positions[name] = record.position
            guard record.status == "failed" else { continue }
            let error = record.error ?? "unknown error"
            guard options.staleOK else {
                throw ProjectionError(
                    projection: name,
                    message: "it is failed, and its table holds its last good state, at seq \(record.position) of \(now.head): \(error); fix it and run `audit replay`, or read with --stale-ok")
            }
            options.note("\(name) is failed (\(error)); answered from its last good state, at seq \(record.position) of \(now.head)")
        }
        for name in folded { positions[name] = head }
        // Parked keys hold their last good states: an answer that includes them says so.
        let parked = Dictionary(grouping: try parkedKeys().filter { positions[$0.projection] != nil }, by: \.projection)
        for (name, keys) in parked.sorted(by: { $0.key < $1.key }) {
            let shown = keys.prefix(5).map(\.key).joined(separator: ", ") + (keys.count > 5 ? ", …" : "")
            options.note(
                "\(name) has \(keys.count) parked key\(keys.count == 1 ? "" : "s") (\(shown)), answered from their last good states; "
                    + "see `audit dead-letters \(name)`")
        }
        return CurrentStates(head: head, positions: positions, scratch: scratch)
    }

    /// Compares the folder's code of each projection read with the code that built its
    /// table: a difference is said (or, with `strictCode`, refused).
    private func checkCode(_ names: [String], _ state: ReadState, options: CatchUpOptions) throws {
        guard let folder = options.folder else { return }
        for name in names {
            guard let record = state.records[name], let code = try? folderCode(name, folder: folder), code.hash != record.codeHash
            else { continue }
            let what = "the code in \(folder)/\(name).lua (with \(folder)/lib) differs from the code that built its table"
            if options.strictCode {
                throw ProjectionError(projection: name, message: "\(what) (--strict-code); `audit replay` rebuilds it")
            }
            options.note("\(name): \(what); answered from the table, kept current with the code that built it; `audit replay` rebuilds it with the folder's")
        }
    }

    /// The code that built `record`'s table, loaded: `build`'s stored code, or the
    /// folder's when no build was recorded and it is the same code; nil when neither.
    /// Its errors name the files of `folder`.
    func tableCode(_ db: Database, record: ProjectionRecord, build: ProjectionBuild?, folder: String?, limits: LuaLimits) throws -> Projection? {
        if let build {
            let code = try CodeHistory.code(db, build: build)
            return try Projection.load(
                code: code, file: folder.map { $0 + "/" + code.script.path }, libDirectory: folder.map { $0 + "/lib" },
                defaultLimits: limits)
        }
        if let folder, let code = try? folderCode(record.name, folder: folder), code.hash == record.codeHash {
            return try Projection.load(code: code, file: folder + "/" + code.script.path, libDirectory: folder + "/lib", defaultLimits: limits)
        }
        return nil
    }

    /// The folder's code of `name`, nil when the folder has no such file.
    func folderCode(_ name: String, folder: String) throws -> ProjectionCode? {
        let file = folder + "/" + name + ".lua"
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        return try ProjectionCode.read(file: file, libDirectory: folder + "/lib")
    }

    /// What a read says of a projection that has no table yet.
    /// - Parameter build: its build in progress, if any: when that failed, the message
    ///   says so and why (a replay was run, and failed), rather than "never been built".
    func neverBuiltMessage(_ name: String, registry: ProjectionRegistry, build: ProjectionRecord? = nil) -> String {
        let registered = registry.names.contains { ProjectionNames.folded($0) == ProjectionNames.folded(name) }
        let command = registered || registry.names.isEmpty ? "audit replay \(name)" : "audit replay --add \(name)"
        if let build, build.status == "failed" {
            return "its first build failed, so it has no table yet (\(build.error ?? "see audit projections")): fix it, and `\(command)` builds it"
        }
        return "it has never been built, so it has no table yet: `\(command)` builds it"
    }
}

/// The head and the catalog records of some projections, read in one transaction.
struct ReadState {
    let head: Int64
    let records: [String: ProjectionRecord]
    let registry: ProjectionRegistry
    /// Live, ok projections behind the head by events none of their handlers takes (the
    /// engine's `CodeBuilt` records, other projections' types): current at the head as
    /// their tables are, with nothing to fold or write.
    let currentUnfolded: Set<String>

    init(_ db: Database, names: [String]) throws {
        head = try ChainHead.seq(db)
        var records: [String: ProjectionRecord] = [:]
        var current: Set<String> = []
        for name in names {
            guard let record = try ReadModel.record(db, name: name, build: false), try db.tableExists(name) else { continue }
            records[name] = record
            if record.status == "ok", record.position < head,
               let build = try CodeHistory.build(db, name: name, codeHash: record.codeHash),
               try !Projection.lagReachesHandlers(db, handledTypes: build.handledTypes, position: record.position, head: head) {
                current.insert(name)
            }
        }
        self.records = records
        currentUnfolded = current
        registry = records.count == names.count ? ProjectionRegistry(names: []) : try ProjectionRegistry.read(db)
    }
}
