import Foundation

/// A command left running in the background, its output going to files that the test
/// reads while it runs (`RunningCommand` reads its pipes only at the end).
final class BackgroundCommand {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    /// `arguments` of `audit`, or with `shell`, a `/bin/sh -c` script (`$AUDIT` is the executable).
    init(_ arguments: [String], in directory: String, shell: Bool = false) throws {
        let id = UUID().uuidString
        stdoutPath = directory + "/.out-" + id
        stderrPath = directory + "/.err-" + id
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        if shell {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c"] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: auditExecutable)
            process.arguments = arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = commandEnvironment(["AUDIT": auditExecutable])
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Its exit status (128 + the signal that ended it), or nil when it runs on past `seconds`.
    func wait(seconds: Double = 60) -> Int32? {
        guard waitUntil(seconds: seconds, { !self.process.isRunning }) else { return nil }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Polls `condition` every 20 ms for at most `seconds`; whether it became true.
@discardableResult
func waitUntil(seconds: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}
