import Foundation
import Testing

/// What enters the log from the command line: arguments are UTF-8 text, and ingest's
/// lines have ids (or the command says how to make them).
@Suite("Entry checks on the command line")
struct EntryTextTests {
    /// Runs `audit` through bash, so that an argument can hold any byte.
    func bash(_ script: String, in directory: String) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script, "bash", auditExecutable]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test("an argument that is not UTF-8 is refused naming its option: 64 for a filter, 65 for an event's content")
    func invalidArguments() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let filter = try bash(#""$1" events --stream $'a\xffb'"#, in: dir.path)
        #expect(filter.status == 64 && filter.stderr.contains("the value of --stream is not valid UTF-8 text"))
        let joined = try bash(#""$1" events --correlation-id=$'\xc0\xaf'"#, in: dir.path)
        #expect(joined.status == 64 && joined.stderr.contains("the value of --correlation-id is not valid UTF-8 text"))
        let content = try bash(#""$1" --db audit.db append --stream s --type $'T\xed\xa0\x80' --data '{}'"#, in: dir.path)
        #expect(content.status == 65 && content.stderr.contains("the value of --type is not valid UTF-8 text"))
        #expect(try audit(["verify"], in: dir.path).stdout.contains(#""events":0"#))
    }

    @Test("ingest refuses lines without ids unless told how to make them; --derive-ids is idempotent, --generate-ids is not")
    func ids() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let lines = #"{"stream":"a","type":"T","data":{}}"# + "\n" + #"{"stream":"a","type":"T","data":{}}"# + "\n"
        let refused = try audit(["ingest"], in: dir.path, stdin: lines)
        #expect(refused.status == 65 && refused.stderr.contains(#"<stdin>:1: the line has no "id""#) && !refused.stderr.contains("<stdin>:2:"))
        #expect(try audit(["ingest", "--derive-ids"], in: dir.path, stdin: lines).stdout == #"{"appended":2,"duplicates":0,"last_seq":2}"# + "\n")
        #expect(try audit(["ingest", "--derive-ids"], in: dir.path, stdin: lines).stdout == #"{"appended":0,"duplicates":2,"last_seq":2}"# + "\n")
        #expect(try audit(["ingest", "--generate-ids"], in: dir.path, stdin: lines).stdout == #"{"appended":2,"duplicates":0,"last_seq":4}"# + "\n")
        #expect(try audit(["ingest", "--generate-ids", "--derive-ids"], in: dir.path, stdin: lines).status == 64)
    }

    @Test("a damaged head record (seq stored as text) is exit 4 from verify, not a crash")
    func damagedHead() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        _ = try sqlite("""
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = replace(sql, ') STRICT', ')') WHERE name = 'chain_head';
            """, dir.path + "/audit.db")
        _ = try sqlite("UPDATE chain_head SET seq = 'x'", dir.path + "/audit.db")
        let result = try audit(["verify"], in: dir.path)
        #expect(result.status == 4)
        #expect(result.stderr.contains("the chain head record is damaged: its seq is stored as text"))
        #expect(result.stderr.contains("table chain_head is not as the engine made it"))
    }
}
