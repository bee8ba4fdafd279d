import Foundation
import GRDB

/// One build of a projection as the database records it (DECISIONS 15).
public struct ProjectionBuild: Sendable, Equatable {
    public var projection: String
    /// `ProjectionCode.hash` of the code it was built with.
    public var codeHash: String
    public var version: Int64
    /// The event types its code handles, sorted.
    public var handledTypes: [String]
    public var builtAt: String
    /// The seq of its `CodeBuilt` event, which names its files and their hashes.
    public var eventSeq: Int64
}

/// The database's code history: each promoted build's script and modules,
/// content-addressed in `audit_code`, indexed in `audit_builds`, and announced by a
/// `CodeBuilt` event on the system stream `audit-code-NAME` in the transaction that
/// promotes the build, so that the hash chain covers which code made which table.
///
/// Cost: each distinct file text is stored once, whatever the number of builds and
/// projections that share it (a lib module used by four projections is one row); a
/// build adds one index row and one event of a few hundred bytes.
enum CodeHistory {
    static let eventType = "CodeBuilt"

    /// The system stream a projection's builds are announced on.
    static func stream(_ name: String) -> String { "audit-code-" + name }


    /// Records `projection`'s code as the code of its table, in write transaction `db`:
    /// its files (those not stored yet), an `audit_builds` row and the `CodeBuilt` event.
    ///
    /// - Parameter recordedLater: the table was built by a build that kept no code
    ///   history; its code is recorded now because the folder's code is the table's.
    /// - Returns: the event's seq.
    @discardableResult
    static func record(
        _ db: Database, store: EventStore, projection: Projection, position: Int64, recordedLater: Bool = false
    ) throws -> Int64 {
        let code = projection.code
        for file in code.files { try storeText(db, text: file.text, sha256: file.sha256, path: file.path) }
        let handled = JSONValue.array(projection.handledTypes.map(JSONValue.string))
        var data: [JSONMember] = [
            JSONMember("projection", .string(projection.name)), JSONMember("version", .int(projection.version)),
            JSONMember("code_hash", .string(code.hash)),
            JSONMember("files", .array(code.files.map {
                .object([JSONMember("path", .string($0.path)), JSONMember("sha256", .string($0.sha256))])
            })),
            JSONMember("handles", handled), JSONMember("position", .int(position)),
            JSONMember("engine_version", .string(EngineVersion.current)),
        ]
        if recordedLater { data.append(JSONMember("recorded_after_build", .bool(true))) }
        let seq = try store.appendSystemEvent(
            db, stream: stream(projection.name), type: eventType, data: .object(data), actor: "audit replay")
        try db.execute(
            sql: "INSERT INTO audit_builds (event_seq, projection, code_hash, version, handled_types, built_at) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [seq, projection.name, code.hash, projection.version, CanonicalJSON.string(handled), Timestamp.now().description])
        return seq
    }

    /// Stores `text` in `audit_code` under `sha256` (the SHA-256 of its UTF-8 bytes, in
    /// hex) unless it is there: each distinct text once, whatever shares it.
    ///
    /// - Throws: `StoreError.integrity` when other content is stored under that hash.
    static func storeText(_ db: Database, text: String, sha256: String, path: String) throws {
        try db.execute(
            sql: "INSERT INTO audit_code (sha256, content) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING", arguments: [sha256, text])
        let stored = try String.fetchOne(db, sql: "SELECT content FROM audit_code WHERE sha256 = ?", arguments: [sha256])
        guard stored == text else {
            throw StoreError.integrity(seq: 0, reason: "audit_code holds other content under the hash \(sha256) of \(path): the code history was altered")
        }
    }

    /// The newest recorded build of `name` with `codeHash`, or nil.
    /// Nil too on a database an older build made, which has no code history yet.
    static func build(_ db: Database, name: String, codeHash: String) throws -> ProjectionBuild? {
        guard try db.tableExists("audit_builds") else { return nil }
        return try Row.fetchOne(
            db,
            sql: """
                SELECT event_seq, projection, code_hash, version, handled_types, built_at FROM audit_builds
                WHERE projection = ? AND code_hash = ? ORDER BY event_seq DESC LIMIT 1
                """,
            arguments: [name, codeHash]
        ).map(build(from:))
    }

    /// Every recorded build, oldest first, from the `CodeBuilt` events themselves (in
    /// the hash chain), not from the `audit_builds` index beside them, which `verify`
    /// compares with them (`CodeHistoryCheck`): a row removed from the index does not
    /// make a build disappear from `--as-reported`. `builtAt` is its event's
    /// `recorded_at`, when its table went live.
    static func builds(_ db: Database) throws -> [ProjectionBuild] {
        let rows = try Row.fetchCursor(
            db, sql: "SELECT seq, stream, recorded_at, data FROM events WHERE type = ? ORDER BY seq", arguments: [eventType])
        var builds: [ProjectionBuild] = []
        while let row = try rows.next() {
            guard let seq = Int64.fromDatabaseValue(row[0]), let streamName = String.fromDatabaseValue(row[1]),
                  let recordedAt = String.fromDatabaseValue(row[2]), let text = String.fromDatabaseValue(row[3]),
                  let data = try? JSONParser.parse(text), let name = data["projection"]?.stringValue, streamName == stream(name),
                  let codeHash = data["code_hash"]?.stringValue, case .int(let version)? = data["version"],
                  case .array(let handles)? = data["handles"]
            else { continue }
            builds.append(ProjectionBuild(
                projection: name, codeHash: codeHash, version: version, handledTypes: handles.compactMap(\.stringValue),
                builtAt: recordedAt, eventSeq: seq))
        }
        return builds
    }

    private static func build(from row: Row) -> ProjectionBuild {
        var handled: [String] = []
        if case .array(let types)? = try? JSONParser.parse(row["handled_types"] as String) {
            handled = types.compactMap(\.stringValue)
        }
        return ProjectionBuild(
            projection: row["projection"], codeHash: row["code_hash"], version: row["version"], handledTypes: handled,
            builtAt: row["built_at"], eventSeq: row["event_seq"])
    }

    /// The code of `build`, as its `CodeBuilt` event names it: each file's text from
    /// `audit_code`, checked against the hash the event gives it, and the whole against
    /// the build's code hash.
    ///
    /// - Throws: `StoreError.integrity` when the event, a file or the hash does not
    ///   check out (the code history was altered outside the engine).
    static func code(_ db: Database, build: ProjectionBuild) throws -> ProjectionCode {
        func altered(_ why: String) -> StoreError {
            .integrity(seq: build.eventSeq, reason: "the stored code of projection \(build.projection) \(why): the code history was altered")
        }
        guard let text = try String.fetchOne(db, sql: "SELECT data FROM events WHERE seq = ?", arguments: [build.eventSeq]),
              let event = try? JSONParser.parse(text), event["projection"]?.stringValue == build.projection,
              event["code_hash"]?.stringValue == build.codeHash, case .array(let files)? = event["files"], !files.isEmpty
        else { throw altered("has no CodeBuilt event at seq \(build.eventSeq) naming it") }
        var texts: [ProjectionCode.File] = []
        for file in files {
            guard let path = file["path"]?.stringValue, let hash = file["sha256"]?.stringValue else {
                throw altered("is named by a CodeBuilt event without a path and hash for each file")
            }
            guard let content = try String.fetchOne(db, sql: "SELECT content FROM audit_code WHERE sha256 = ?", arguments: [hash]) else {
                throw altered("lacks \(path) (SHA-256 \(hash)) in audit_code")
            }
            let file = ProjectionCode.File(path: path, text: content)
            guard file.sha256 == hash else { throw altered("has a \(path) that does not match its SHA-256 \(hash)") }
            texts.append(file)
        }
        let code = ProjectionCode(name: build.projection, script: texts[0], modules: Array(texts.dropFirst()))
        guard code.hash == build.codeHash else { throw altered("does not hash to its code hash \(build.codeHash)") }
        return code
    }
}

extension EventStore {
    /// Every build the database recorded, oldest first: which code made which table, and
    /// when (DECISIONS 15).
    public func projectionBuilds() throws -> [ProjectionBuild] {
        try readTransaction { db in try CodeHistory.builds(db) }
    }

    /// The projection as the code of `build` defines it, loaded from the code history.
    ///
    /// - Parameter folder: the projections folder its errors name the files in (default:
    ///   the stored relative paths, `NAME.lua` and `lib/M.lua`).
    /// - Throws: `StoreError.integrity` when the stored code does not check out;
    ///   `ProjectionError` when it does not load.
    public func storedProjection(_ build: ProjectionBuild, folder: String? = nil, defaultLimits: LuaLimits = .default) throws -> Projection {
        let code = try readTransaction { db in try CodeHistory.code(db, build: build) }
        return try Projection.load(
            code: code, file: folder.map { $0 + "/" + code.script.path }, libDirectory: folder.map { $0 + "/lib" },
            defaultLimits: defaultLimits)
    }
}
