import Foundation
import Testing

/// The `audit` executable built beside this test bundle.
let auditExecutable: String = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // On Linux the test bundle is `<build>/debug/<name>.xctest`, beside the executables.
    if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
    return dir.appendingPathComponent("audit").path
}()

let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A started `audit` process (or another `executable`); `wait()` collects its result.
final class RunningCommand {
    let process = Process()
    private let out = Pipe()
    private let err = Pipe()

    init(
        _ arguments: [String], in directory: String, stdin: String? = nil, environment: [String: String] = [:],
        executable: String = auditExecutable
    ) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = commandEnvironment(environment)
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
    }

    func wait() -> CommandResult {
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// The environment a command under test runs in: this process's without `$AUDIT_DB`
/// (a test names its database, or means ./audit.db), `searchedFirst` put at the front
/// of `PATH`, and `extra` on top.
func commandEnvironment(_ extra: [String: String] = [:], searchedFirst: String? = nil) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "AUDIT_DB")
    if let searchedFirst { env["PATH"] = searchedFirst + ":" + (env["PATH"] ?? "/usr/bin:/bin") }
    env.merge(extra) { $1 }
    return env
}

/// Runs `audit ARGUMENTS` in `directory` and waits for it.
@discardableResult
func audit(_ arguments: [String], in directory: String, stdin: String? = nil, environment: [String: String] = [:]) throws -> CommandResult {
    try RunningCommand(arguments, in: directory, stdin: stdin, environment: environment).wait()
}

final class TempDir: Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "audit-cli-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension TempDir {
    /// A workspace: `projections` (name -> source) written to projections/, `audit init`
    /// run, and `events` (JSONL lines) ingested with generated ids.
    static func workspace(projections: [String: String] = [:], events: [String]) throws -> TempDir {
        let dir = TempDir()
        // Only with projections of its own: into an existing folder, init writes no example.
        if !projections.isEmpty {
            try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        }
        for (name, source) in projections {
            try source.write(toFile: dir.path + "/projections/\(name).lua", atomically: true, encoding: .utf8)
        }
        try audit(["init"], in: dir.path)
        let file = dir.path + "/events.jsonl"
        _ = FileManager.default.createFile(atPath: file, contents: Data(events.joined(separator: "\n").utf8))
        #expect(try audit(["ingest", "--generate-ids", file], in: dir.path).status == 0)
        return dir
    }
}

/// Kills `replay` with SIGKILL once the build of projection `name` in `dir` has saved a
/// checkpoint at `position` or past it (at most 60 s); returns the position it had.
func killOnceBuilt(_ replay: RunningCommand, _ name: String, past position: Int, in dir: TempDir) -> Int {
    let deadline = Date().addingTimeInterval(60)
    var reached = 0
    while Date() < deadline, replay.process.isRunning {
        let out = try? sqlite("SELECT position FROM projection_builds WHERE name = '\(name)'", dir.path + "/audit.db")
        reached = Int(out ?? "") ?? 0
        if reached >= position { break }
        usleep(10_000)
    }
    #expect(replay.process.isRunning, "the replay finished before it could be killed")
    kill(replay.process.processIdentifier, SIGKILL)
    _ = replay.wait()
    return reached
}

/// Runs the sqlite3 tool and returns its output, without surrounding whitespace.
func sqlite(_ sql: String, _ db: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    process.arguments = [db, sql]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = Pipe()
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A folder with the repository's projections and saved queries, initialised, holding
/// the road-fines log (docs/data/road-fines.jsonl).
func roadFinesWorkspace() throws -> TempDir {
    let dir = TempDir()
    for folder in ["projections", "queries"] {
        try FileManager.default.copyItem(atPath: repositoryRoot + "/" + folder, toPath: dir.path + "/" + folder)
    }
    try #require(try audit(["init"], in: dir.path).status == 0)
    try #require(try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path).status == 0)
    return dir
}
