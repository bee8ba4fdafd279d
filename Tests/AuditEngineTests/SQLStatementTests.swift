import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// `SQLStatement`, the one wrapper of SQLite's statement functions: its failures name
/// the SQL and the database file, its text and blobs keep their exact bytes, and no
/// source outside `Store/` calls SQLite itself.
@Suite("SQL statements")
struct SQLStatementTests {
    /// A database file in `dir` with a table `t` whose `n` is unique.
    private func database(_ dir: TempDir) throws -> (DatabaseQueue, String) {
        let path = dir.file("plain.db")
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "CREATE TABLE t (n INTEGER UNIQUE, s TEXT, b BLOB)") }
        return (queue, path)
    }

    /// The failure `body` throws, which must be `StoreError.sqlite`.
    private func failure(_ body: () throws -> Void) throws -> SQLiteFailure {
        do {
            try body()
        } catch StoreError.sqlite(let failure) {
            return failure
        }
        throw CLIFailure("no SQLite failure was thrown")
    }

    @Test("a failed step names the SQL, the database file and what the engine was doing")
    func stepFailure() throws {
        let dir = TempDir()
        let (queue, path) = try database(dir)
        let sql = "INSERT INTO t (n) VALUES (?)"
        let failure = try failure {
            try queue.write { db in
                let insert = try SQLStatement(db, sql)
                insert.bind(1, Int64(7))
                try insert.run()
                insert.reset()
                try insert.run("adding the second seven")
            }
        }
        #expect(failure.primaryCode == 19)  // SQLITE_CONSTRAINT
        #expect(failure.sql == sql)
        #expect(failure.path == path)
        #expect(failure.context == "adding the second seven")
        #expect(failure.description == "\(path): adding the second seven: SQLite error \(failure.code): UNIQUE constraint failed: t.n - while executing `\(sql)`")
        #expect(StoreError.sqlite(failure).category == .failure)
    }

    @Test("SQL that does not compile is reported with its text and the database file")
    func prepareFailure() throws {
        let dir = TempDir()
        let (queue, path) = try database(dir)
        let failure = try failure {
            try queue.read { db in _ = try SQLStatement(db, "SELECT x FROM nowhere") }
        }
        #expect(failure.sql == "SELECT x FROM nowhere")
        #expect(failure.path == path)
        #expect(failure.description.hasPrefix("\(path): SQLite error 1: no such table: nowhere"))
        #expect(failure.description.hasSuffix("`SELECT x FROM nowhere`"))
    }

    @Test("a bind that fails is reported by the next step, with the SQL and the file, and runs nothing")
    func bindFailure() throws {
        let dir = TempDir()
        let (queue, path) = try database(dir)
        let sql = "INSERT INTO t (n) VALUES (?)"
        let failure = try failure {
            try queue.write { db in
                let insert = try SQLStatement(db, sql)
                insert.bind(1, Int64(1))
                insert.bind(2, text: "no such parameter")
                try insert.run("binding too much")
            }
        }
        #expect(failure.primaryCode == 25)  // SQLITE_RANGE
        #expect(failure.description.contains(path))
        #expect(failure.description.contains("binding too much"))
        #expect(failure.description.contains("`\(sql)`"))
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 0)
    }

    @Test("a temporary database is named as one")
    func temporaryDatabase() throws {
        let queue = try DatabaseQueue(path: "")
        let failure = try failure { try queue.read { db in _ = try SQLStatement(db, "SELECT * FROM missing") } }
        #expect(failure.path == "a temporary database")
    }

    @Test("text and blobs keep their exact bytes, NULs included, and every storage class reads as itself")
    func exactBytes() throws {
        let dir = TempDir()
        let (queue, _) = try database(dir)
        let text: [UInt8] = [0x61, 0x00, 0x62, 0x00]
        let blob: [UInt8] = [0x00, 0xFF, 0x00]
        try queue.write { db in
            let insert = try SQLStatement(db, "INSERT INTO t (n, s, b) VALUES (?, ?, ?)")
            insert.bind(1, Int64.min)
            text.withUnsafeBytes { insert.bind(2, text: $0) }
            insert.bind(3, blob: blob)
            try insert.run()
            insert.reset()
            insert.bindNull(1)
            try text.withUnsafeBytes { bytes in
                insert.bind(2, borrowedText: bytes)
                insert.bind(3, blob: [])
                try insert.run()
            }
        }
        try queue.read { db in
            let rows = try SQLStatement(db, "SELECT n, s, b, 2.5 FROM t ORDER BY n IS NULL")
            #expect(try rows.step())
            #expect(rows.storageClass(0) == .integer && rows.int64(0) == Int64.min)
            #expect(rows.storageClass(1) == .text && rows.bytes(1) == text)
            #expect(rows.storageClass(2) == .blob && [UInt8](rows.blob(2)) == blob)
            #expect(rows.storageClass(3) == .real && rows.double(3) == 2.5)
            #expect(try rows.step())
            #expect(rows.storageClass(0) == .null)
            #expect(rows.string(1) == "a\u{0}b\u{0}")
            #expect(rows.storageClass(2) == .blob && rows.blob(2).isEmpty)
            #expect(try !rows.step())
        }
    }

    @Test("parameter names come in index order, nil for a ?")
    func parameterNames() throws {
        let queue = try DatabaseQueue(path: "")
        try queue.read { db in
            let named = try SQLStatement(db, "SELECT :a, ?, :b"), none = try SQLStatement(db, "SELECT 1")
            #expect(named.parameterNames == [":a", nil, ":b"])
            #expect(none.parameterNames == [])
        }
    }

    @Test("a projection's state that cannot be written fails the replay naming the projection, the SQL and the database")
    func replayWriteFailure() throws {
        let (w, _) = try Workspace.withOrderTotals(count: 200, streams: 10, seed: 3)
        try w.replay(["order_totals"])
        try w.store.writeTransaction { db in
            try db.execute(sql: "CREATE TRIGGER refuse BEFORE INSERT ON order_totals BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        }
        try w.ingest([eventLine(stream: "order-new", type: "OrderPlaced", data: #"{"customer":"c1","amount":5}"#)])
        var text = ""
        do {
            for outcome in try w.replay(["order_totals"]) {
                if case .failed(let error) = outcome.status { text = "\(error)" }
            }
        } catch {
            text = "\(error)"
        }
        #expect(text.contains(w.store.path))
        #expect(text.contains("cannot write the state of projection order_totals"))
        #expect(text.contains("refused by the test"))
        #expect(text.contains("while executing `INSERT INTO \"order_totals\""))
    }
}

/// No source outside `Store/` (and the benchmark, whose bare-SQLite baseline is the
/// point) reaches SQLite's C interface: not a call, not the module, not a raw handle.
@Suite("SQLite calls")
struct SQLiteCallScanTests {
    static let forbidden = ["sqlite3_", "import GRDBSQLite", ".sqliteStatement", ".sqliteConnection"]

    /// `file:line: text` of each line (comments cut off) holding a forbidden word.
    static func rawCalls(in file: String) throws -> [String] {
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        return lines.enumerated().compactMap { number, line in
            let code = line.range(of: "//").map { line[..<$0.lowerBound] } ?? line[...]
            return forbidden.contains(where: { code.contains($0) }) ? "\(file):\(number + 1): \(line)" : nil
        }
    }

    /// Every Swift source of the engine and the CLI, relative to the repository.
    static func sources() throws -> [String] {
        try ["Sources/AuditEngine", "Sources/AuditCLI"].flatMap { folder -> [String] in
            let root = repositoryRoot + "/" + folder
            return try #require(FileManager.default.subpaths(atPath: root)).filter { $0.hasSuffix(".swift") }.map { "\(folder)/\($0)" }
        }
    }

    @Test("only Store/ calls SQLite's C functions")
    func onlyStoreCallsSQLite() throws {
        let sources = try Self.sources()
        let outside = sources.filter { !$0.hasPrefix("Sources/AuditEngine/Store/") }
        #expect(outside.count > 50)
        var calls: [String] = []
        for file in outside { calls += try Self.rawCalls(in: repositoryRoot + "/" + file) }
        #expect(calls.isEmpty, "SQLite called outside Sources/AuditEngine/Store/ (use SQLStatement or SQLConnection):\n\(calls.joined(separator: "\n"))")
        // The scan sees the calls where they are.
        #expect(try Self.rawCalls(in: repositoryRoot + "/Sources/AuditEngine/Store/SQLStatement.swift").count > 10)
        #expect(try Self.rawCalls(in: repositoryRoot + "/Sources/AuditEngine/Store/SQLConnection.swift").count >= 3)
    }
}
