import GRDB

/// `verify`'s check of the code history (DECISIONS 15): the `CodeBuilt` events are in
/// the hash chain, the tables beside them are not. So `audit_builds` is rebuilt from the
/// events and compared row by row (a build removed, added or changed in the index), each
/// file an event names must be in `audit_code`, and every text in `audit_code` must hash
/// to the SHA-256 it is stored under. Without this, an edited code history passed
/// `verify` and surfaced only when `--as-reported` read it, or a removed index row made
/// `--as-reported` say no build was live.
enum CodeHistoryCheck {
    static func check(_ db: Database, into check: inout ChainCheck) throws {
        guard try db.tableExists("audit_builds"), try db.tableExists("audit_code") else { return }
        var recorded: [Int64: [DatabaseValue]] = [:]
        var named: [String: (seq: Int64, path: String)] = [:]
        let events = try Row.fetchCursor(
            db, sql: "SELECT seq, stream, data FROM events WHERE type = ? ORDER BY seq", arguments: [CodeHistory.eventType])
        while let row = try events.next() {
            let seq: Int64 = row[0]
            guard let stream = String.fromDatabaseValue(row[1]), stream.hasPrefix("audit-code-"),
                  let text = String.fromDatabaseValue(row[2]) else { continue }
            guard let data = try? JSONParser.parse(text), let projection = data["projection"]?.stringValue,
                  let codeHash = data["code_hash"]?.stringValue, case .int(let version)? = data["version"],
                  case .array(let handles)? = data["handles"], case .array(let files)? = data["files"]
            else {
                check.add(seq: seq, "its CodeBuilt event does not name a projection, code hash, version, handled types and files")
                continue
            }
            recorded[seq] = [
                projection.databaseValue, codeHash.databaseValue, version.databaseValue,
                CanonicalJSON.string(.array(handles)).databaseValue,
            ]
            for file in files {
                if let hash = file["sha256"]?.stringValue, named[hash] == nil { named[hash] = (seq, file["path"]?.stringValue ?? "?") }
            }
        }
        let builds = try Row.fetchCursor(
            db, sql: "SELECT event_seq, projection, code_hash, version, handled_types, built_at FROM audit_builds ORDER BY event_seq")
        while let row = try builds.next() {
            let seqValue: DatabaseValue = row[0]
            guard case .int64(let seq) = seqValue.storage else {
                check.add(seq: nil, "audit_builds holds a row whose event_seq is not an integer: the code history was altered")
                continue
            }
            guard let expected = recorded.removeValue(forKey: seq) else {
                check.add(seq: seq, "audit_builds lists a build at seq \(seq), but no CodeBuilt event is there: the code history was altered")
                continue
            }
            let stored: [DatabaseValue] = (1...4).map { row[$0] }
            if stored != expected {
                let columns = ["projection", "code_hash", "version", "handled_types"]
                let differing = zip(columns, zip(stored, expected)).filter { $0.1.0 != $0.1.1 }.map(\.0)
                check.add(seq: seq, "audit_builds' row for its build differs from the CodeBuilt event (\(differing.joined(separator: ", "))): the code history was altered")
            }
        }
        // Both tables empty: a database upgraded from before the code history (whose log
        // can hold no CodeBuilt event it would index), or one whose history was wiped
        // whole — which `--as-reported` then refuses (exit 4) for every build, since the
        // builds are the events' and their files are gone. Anything less is found here.
        let kept = try Int.fetchOne(db, sql: "SELECT (SELECT count(*) FROM audit_builds) + (SELECT count(*) FROM audit_code)") ?? 0
        guard kept > 0 else { return }
        for seq in recorded.keys.sorted() {
            check.add(seq: seq, "audit_builds omits the build its CodeBuilt event records: the code history was altered")
        }
        let texts = try Row.fetchCursor(db, sql: "SELECT sha256, content FROM audit_code")
        while let row = try texts.next() {
            guard let hash = String.fromDatabaseValue(row[0]), let content = String.fromDatabaseValue(row[1]),
                  (row[0] as DatabaseValue).storage.isText, (row[1] as DatabaseValue).storage.isText
            else {
                check.add(seq: nil, "audit_code holds a row that is not two texts: the code history was altered")
                continue
            }
            let place = named.removeValue(forKey: hash).map { " (\($0.path) of the build at seq \($0.seq))" } ?? ""
            if ProjectionCode.File(path: "", text: content).sha256 != hash {
                check.add(seq: nil, "audit_code holds text under the SHA-256 \(hash)\(place) that does not hash to it: the code history was altered")
            }
        }
        for (hash, file) in named.sorted(by: { $0.value.seq < $1.value.seq }) {
            check.add(seq: file.seq, "audit_code lacks \(file.path) (SHA-256 \(hash)), which its CodeBuilt event names: the code history was altered")
        }
    }
}

extension DatabaseValue.Storage {
    fileprivate var isText: Bool {
        if case .string = self { return true }
        return false
    }
}
