import Foundation
import Testing

/// Runs `script` with bash in `directory` (the audit binary first on PATH), so that a
/// test can redirect or close the command's descriptors as a shell user would.
func shell(_ script: String, in directory: String) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.environment = commandEnvironment(searchedFirst: URL(fileURLWithPath: auditExecutable).deletingLastPathComponent().path)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

@Suite("Output that cannot be written", .serialized)
struct OutputFailureTests {
    /// The road-fines log, replayed with the repository's projections, and a key.
    static let workspace: TempDir = {
        let dir = TempDir()
        for name in ["projections", "queries"] {
            try! FileManager.default.createSymbolicLink(atPath: dir.path + "/" + name, withDestinationPath: repositoryRoot + "/" + name)
        }
        _ = try! audit(["init"], in: dir.path)
        _ = try! audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        _ = try! audit(["replay"], in: dir.path)
        _ = try! audit(["keygen", "k/key"], in: dir.path)
        return dir
    }()

    /// Every command that prints to stdout (each run writes to a fresh place).
    static let commands: [String] = [
        "audit events", "audit events --format json", "audit events --format csv", "audit events --format table",
        "audit query outstanding_fines", "audit query --sql 'SELECT * FROM events' --format csv",
        "audit query --sql 'SELECT * FROM events' --format json", "audit query --sql 'SELECT count(*) FROM events' --as-of 2005-12-31",
        "audit state fine_balances", "audit state fine_balances --format table", "audit state fine_balances --as-of 2005-12-31",
        "audit explain fine_balances S45359", "audit verify", "audit projections", "audit replay", "audit snapshot fine_balances", "audit snapshot --list fine_balances",
        "audit append --stream out-test --type T --data '{}'", "audit ingest docs.jsonl", "audit test", "audit keygen \"k/$RANDOM$RANDOM\"",
        "audit export --out \"x/$RANDOM$RANDOM\"", "audit verify-export x1 --allow-unsigned --trust-embedded-key",
        "audit --help", "audit --version", "audit events --help",
    ]

    init() throws {
        let dir = Self.workspace.path
        if !FileManager.default.fileExists(atPath: dir + "/x1") {
            _ = try audit(["export", "--out", "x1"], in: dir)
            try #"{"id":"doc-1","stream":"d","type":"T","data":{}}"#.write(toFile: dir + "/docs.jsonl", atomically: true, encoding: .utf8)
        }
    }

    @Test("stdout on a full device: exit 1, saying so", arguments: commands)
    func fullDevice(command: String) throws {
        let result = try shell(command + " >/dev/full", in: Self.workspace.path)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot write the output to stdout: No space left on device (disk full)"), "\(result.stderr)")
    }

    @Test("a write whose result line cannot be printed says what it committed: the appended event's seq, the ingest, the export's directory")
    func committedWrites() throws {
        let append = try shell("audit append --stream committed --type T --data '{}' --id committed-1 >/dev/full", in: Self.workspace.path)
        #expect(append.status == 1 && append.stderr.contains(", but the event was appended at seq "), "\(append.stderr)")
        #expect(append.stderr.contains("(id committed-1)"), "\(append.stderr)")
        let ingest = try shell("audit ingest docs.jsonl >/dev/full", in: Self.workspace.path)
        #expect(ingest.status == 1 && ingest.stderr.contains(", but the ingest was committed: "), "\(ingest.stderr)")
        let export = try shell("audit export --out committed-x >/dev/full", in: Self.workspace.path)
        #expect(export.status == 1 && export.stderr.contains(", but the export was completed in "), "\(export.stderr)")
        #expect(FileManager.default.fileExists(atPath: Self.workspace.path + "/committed-x/manifest.json"))
    }

    @Test("a closed stdout: exit 1, saying so", arguments: ["audit events", "audit verify", "audit state fine_balances", "audit --version"])
    func closedStdout(command: String) throws {
        let result = try shell(command + " >&-", in: Self.workspace.path)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot write the output to stdout: Bad file descriptor"), "\(result.stderr)")
    }

    @Test("a reader that goes away (EPIPE) ends the command quietly")
    func brokenPipe() throws {
        let result = try shell("audit events 2>err.txt | head -c 100 >/dev/null; echo ${PIPESTATUS[0]}; cat err.txt", in: Self.workspace.path)
        #expect(result.stdout == "141\n", "\(result.stdout)")
    }

    /// Failures with each exit code, for a failing stderr.
    static let failures: [(String, Int32)] = [
        ("audit --db /nonexistent/x.db verify", 1),
        ("audit append --stream S45359 --type T --data '{}' --expected-version 1", 3),
        ("audit --db tampered.db verify", 4),
        ("audit events --bogus", 64),
        ("audit query --sql 'SELEC 1'", 65),
    ]

    @Test("a full or closed stderr keeps the exit code and never crashes", arguments: failures)
    func failingStderr(command: String, code: Int32) throws {
        let dir = Self.workspace.path
        if !FileManager.default.fileExists(atPath: dir + "/tampered.db") {
            try FileManager.default.copyItem(atPath: dir + "/audit.db", toPath: dir + "/tampered.db")
            _ = try sqlite("DROP TRIGGER events_are_not_updated; UPDATE events SET data = '{}' WHERE seq = 7", dir + "/tampered.db")
        }
        for redirect in ["2>/dev/full", "2>&-", "2>/dev/full >/dev/full"] {
            let result = try shell("\(command) \(redirect)", in: dir)
            #expect(result.status == code, "\(command) \(redirect): \(result.status)")
        }
    }
}

@Suite("A full disk", .serialized)
struct FullDiskTests {
    /// A 2 MB tmpfs, when this process may mount one (root); nil otherwise.
    static func mountSmallDisk() throws -> TempDir? {
        guard getuid() == 0 else { return nil }
        let dir = TempDir()
        let mounted = try shell("mount -t tmpfs -o size=2m tmpfs \(dir.path)/disk 2>/dev/null || { mkdir \(dir.path)/disk && mount -t tmpfs -o size=2m tmpfs \(dir.path)/disk; }", in: dir.path)
        return mounted.status == 0 ? dir : nil
    }

    @Test("on a full disk: output to a file fails with exit 1, and SQLite's I/O error says disk full")
    func fullDisk() throws {
        guard let dir = try Self.mountSmallDisk() else {
            print("skipped: cannot mount a tmpfs here (not root)")
            return
        }
        defer { _ = try? shell("umount \(dir.path)/disk", in: dir.path) }
        _ = try audit(["init"], in: dir.path)
        _ = try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        try FileManager.default.copyItem(atPath: dir.path + "/audit.db", toPath: dir.path + "/disk/g.db")
        _ = try shell("dd if=/dev/zero of=disk/fill bs=4k 2>/dev/null", in: dir.path)
        let events = try shell("audit events > disk/out.jsonl", in: dir.path)
        #expect(events.status == 1)
        #expect(events.stderr.contains("No space left on device (disk full)"), "\(events.stderr)")
        let export = try audit(["export", "--out", "disk/export"], in: dir.path)
        #expect(export.status == 1 && export.stderr.contains("No space left on device (disk full)"), "\(export.stderr)")
        // A writer cannot even open the database (its -wal and -shm cannot grow) and says why;
        // verify opens it read-only, writes nothing, and so still checks it.
        let append = try audit(["--db", "disk/g.db", "append", "--stream", "s", "--type", "T", "--data", "{}"], in: dir.path)
        #expect(append.status == 1)
        #expect(append.stderr.contains("disk full: the file system holding") && !append.stderr.contains("SQLite error 10:"), "\(append.stderr)")
        let verify = try audit(["--db", "disk/g.db", "verify"], in: dir.path)
        #expect(verify.status == 0 && verify.stdout.contains(#""ok":true"#), "\(verify.stderr)")
    }
}
