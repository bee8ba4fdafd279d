import AuditEngine
import Foundation
import Testing

/// Read-only evidence: an auditor who may only read the database (another user, a
/// write-protected copy) verifies and reads it, and nothing is created beside it.
/// The tests run as root here and in CI, so the auditor is uid 65534 through setpriv.
@Suite("Read-only databases")
struct ReadOnlyCommandTests {
    /// Runs `audit ARGUMENTS` in `directory` as the user `uid` (setpriv), or as root.
    static func run(_ arguments: [String], in directory: String, uid: Int? = nil) throws -> CommandResult {
        let process = Process()
        if let uid {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", auditExecutable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: auditExecutable)
            process.arguments = arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = commandEnvironment()
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    static let nobody = 65534

    /// A database of the road-fines log in `dir`, closed (no -wal left).
    static func database(_ dir: String) throws {
        #expect(try audit(["init", "--projections", "p", "--queries", "q"], in: dir).status == 0)
        #expect(try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir).status == 0)
    }

    static func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// The read commands an auditor runs, each expected to exit 0.
    static let reads: [[String]] = [
        ["verify"], ["events", "--limit", "2"], ["events", "--type", "Payment", "--format", "csv"],
        ["query", "--sql", "SELECT count(*) AS n FROM events", "--format", "csv"], ["projections", "--projections", "p"],
    ]

    @Test("another user who may only read it verifies and reads it, in a folder they cannot write, creating nothing; writers say it is read-only")
    func otherUser() throws {
        let dir = TempDir()
        try Self.database(dir.path)
        chmod(dir.path, 0o755)
        let before = Self.files(dir.path)
        for command in Self.reads {
            let result = try Self.run(command, in: dir.path, uid: Self.nobody)
            #expect(result.status == 0, "\(command): \(result.stderr)")
        }
        #expect(try Self.run(["verify"], in: dir.path, uid: Self.nobody).stdout.contains(#""events":390"#))
        #expect(Self.files(dir.path) == before)
        let append = try Self.run(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path, uid: Self.nobody)
        #expect(append.status == 1 && append.stderr.contains("the database at audit.db is read-only"))
        #expect(Self.files(dir.path) == before)
        #expect(try audit(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path).status == 0)
    }

    @Test("in a shared sticky folder, an auditor's verify leaves no -wal or -shm behind, and the owner appends afterwards")
    func stickyFolder() throws {
        let dir = TempDir()
        let shared = dir.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(shared, 0o1777)
        try Self.database(shared)
        chown(shared + "/audit.db", 1001, 1001)
        chmod(shared + "/audit.db", 0o644)
        let before = Self.files(shared)
        #expect(try Self.run(["verify"], in: shared, uid: Self.nobody).status == 0)
        #expect(Self.files(shared) == before)
        let owner = try Self.run(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: shared, uid: 1001)
        #expect(owner.status == 0, "\(owner.stderr)")
        #expect(try Self.run(["verify"], in: shared, uid: Self.nobody).stdout.contains(#""events":391"#))
    }

    @Test("a copy of mode 444 and one marked immutable (chattr +i) are verified and read; writers say they are read-only")
    func writeProtected() throws {
        let dir = TempDir()
        try Self.database(dir.path)
        chown(dir.path + "/audit.db", UInt32(Self.nobody), UInt32(Self.nobody))
        chmod(dir.path + "/audit.db", 0o444)
        chmod(dir.path, 0o1777)
        let before = Self.files(dir.path)
        for command in Self.reads {
            #expect(try Self.run(command, in: dir.path, uid: Self.nobody).status == 0, "\(command)")
        }
        let append = try Self.run(["append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path, uid: Self.nobody)
        #expect(append.status == 1 && append.stderr.contains("is read-only: this user may not write audit.db"))
        #expect(Self.files(dir.path) == before)

        chmod(dir.path + "/audit.db", 0o644)
        let chattr = Process()
        chattr.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        chattr.arguments = ["+i", dir.path + "/audit.db"]
        try chattr.run()
        chattr.waitUntilExit()
        guard chattr.terminationStatus == 0 else {
            print("read-only databases: the chattr +i case cannot run here (chattr exited \(chattr.terminationStatus): the file system has no immutable flag)")
            return
        }
        defer {
            let undo = Process()
            undo.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
            undo.arguments = ["-i", dir.path + "/audit.db"]
            try? undo.run()
            undo.waitUntilExit()
        }
        for command in Self.reads {
            #expect(try Self.run(command, in: dir.path).status == 0, "\(command) on an immutable file")
        }
        let rootAppend = try Self.run(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        #expect(rootAppend.status == 1 && rootAppend.stderr.contains("is read-only: audit.db is marked immutable (chattr +i)"))
        #expect(Self.files(dir.path) == before)
    }

    @Test("while a writer has it open (-wal and -shm present), an auditor reads its latest commits without creating anything")
    func liveDatabase() throws {
        let dir = TempDir()
        try Self.database(dir.path)
        chmod(dir.path, 0o755)
        let writer = try EventStore(path: dir.path + "/audit.db")
        try writer.append(NewEvent(stream: "live", type: "T"))
        let before = Self.files(dir.path)
        #expect(before.contains("audit.db-wal") && before.contains("audit.db-shm"))
        let verify = try Self.run(["verify"], in: dir.path, uid: Self.nobody)
        #expect(verify.status == 0 && verify.stdout.contains(#""events":391"#), "\(verify.stderr)")
        #expect(try Self.run(["events", "--stream", "live"], in: dir.path, uid: Self.nobody).stdout.contains(#""stream":"live""#))
        #expect(Self.files(dir.path) == before)

        // A copy of the file and its -wal, without the -shm: the commits in the -wal
        // cannot be read without creating one, which a read-only command never does.
        let copy = dir.path + "/copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: false)
        for name in ["audit.db", "audit.db-wal"] { try FileManager.default.copyItem(atPath: dir.path + "/" + name, toPath: copy + "/" + name) }
        let partial = try Self.run(["verify"], in: copy)
        #expect(partial.status == 1 && partial.stderr.contains("has commits in audit.db-wal") && partial.stderr.contains(#"sqlite3 audit.db ".backup copy.db""#))
        #expect(Self.files(copy) == ["audit.db", "audit.db-wal"])
        // Following the advice gives a complete copy.
        _ = try sqliteTool([copy + "/audit.db", ".backup \(copy)/complete.db"])
        #expect(try Self.run(["--db", "complete.db", "verify"], in: copy).stdout.contains(#""events":391"#))
        withExtendedLifetime(writer) {}
    }

    /// Runs the sqlite3 tool with `arguments`.
    func sqliteTool(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
