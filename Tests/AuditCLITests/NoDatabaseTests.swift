import Foundation
import Testing

/// Only `init` creates a database: every other command on a file that is not an audit
/// database says so and leaves it exactly as it was, with nothing beside it.
@Suite("Files that are not audit databases")
struct NoDatabaseTests {
    static let commands: [[String]] = [
        ["events"], ["append", "--stream", "s", "--type", "T", "--data", "{}"], ["ingest", "--generate-ids", "in.jsonl"],
        ["replay"], ["projections"], ["state", "x"], ["query", "--sql", "SELECT 1"], ["snapshot"],
        ["export", "--name", "e", "--out", "out"],
    ]

    /// Each kind of file, and what the message says of it.
    static let files: [(String, String)] = [
        ("an empty file", "the file is empty"),
        ("another SQLite database", "it is an SQLite database without the audit schema"),
        ("a text file", "it is not an SQLite database"),
    ]

    static func make(_ kind: String, at path: String) throws {
        switch kind {
        case "an empty file": _ = FileManager.default.createFile(atPath: path, contents: Data())
        case "another SQLite database": _ = try sqlite("CREATE TABLE t (a); INSERT INTO t VALUES (1)", path)
        default: try "hello, not a database\n".write(toFile: path, atomically: false, encoding: .utf8)
        }
    }

    @Test("every command says there is no audit database, writes nothing, and verify exits 4", arguments: files)
    func refused(kind: String, reason: String) throws {
        let dir = TempDir()
        let path = dir.path + "/audit.db"
        try Self.make(kind, at: path)
        try #"{"stream":"s","type":"T","data":{}}"#.write(toFile: dir.path + "/in.jsonl", atomically: false, encoding: .utf8)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let verify = try audit(["verify"], in: dir.path)
        #expect(verify.status == 4 && verify.stderr.contains("no audit database at audit.db: \(reason)"), "\(verify.stderr)")
        #expect(verify.stdout.isEmpty)
        for command in Self.commands {
            let result = try audit(command, in: dir.path)
            #expect(result.status == 1 && result.stderr.contains("no audit database at audit.db: \(reason)"), "\(command): \(result.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal") && !FileManager.default.fileExists(atPath: path + "-shm"))
        let initialise = try audit(["init"], in: dir.path)
        if kind == "an empty file" {
            let verified = try audit(["verify"], in: dir.path)
            #expect(initialise.status == 0 && verified.status == 0)
        } else {
            #expect(initialise.status == 1 && initialise.stderr.contains("audit init makes a database only where there is none, or an empty file"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
        }
    }

    @Test("a missing database is exit 1 for every command, verify included, and nothing is created")
    func missing() throws {
        let dir = TempDir()
        for command in [["verify"]] + Self.commands {
            let result = try audit(command, in: dir.path)
            #expect(result.status == 1 && result.stderr.contains("no audit database at audit.db; run `audit init` there"), "\(command)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/audit.db"))
    }
}
