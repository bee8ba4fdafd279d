import Foundation
import Testing

/// Every `sh` example in the docs runs, in order, against the real binary, so the docs
/// cannot drift from what the commands do. A line expected to fail says so with a
/// trailing `# exits N`.
@Suite("Documentation examples")
struct DocsExamplesTests {
    struct Example: CustomStringConvertible {
        var line: String
        var expectedStatus: Int32
        var description: String { line }
    }

    /// The shell commands of a Markdown file's ```sh blocks (continuation lines joined).
    static func examples(in file: String) throws -> [Example] {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/" + file, encoding: .utf8)
        var result: [Example] = []
        var inBlock = false
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.hasPrefix("```") {
                inBlock = !inBlock && line == "```sh"
                continue
            }
            guard inBlock else { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
                continue
            }
            let command = (pending + line).trimmingCharacters(in: .whitespaces)
            pending = ""
            guard !command.isEmpty, !command.hasPrefix("#") else { continue }
            var status: Int32 = 0
            if let range = command.range(of: #"# exits (\d+)"#, options: .regularExpression) {
                status = Int32(command[range].split(separator: " ").last!)!
            }
            result.append(Example(line: command, expectedStatus: status))
        }
        return result
    }

    @Test("the examples of each guide run as documented", arguments: ["cli.md", "projections.md", "events.md", "exports.md"])
    func guide(file: String) throws {
        let examples = try Self.examples(in: file)
        #expect(examples.count >= 3)
        let dir = TempDir()
        for name in ["docs", "projections", "queries"] {
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/" + name, withDestinationPath: repositoryRoot + "/" + name)
        }
        let bin = URL(fileURLWithPath: auditExecutable).deletingLastPathComponent().path
        for example in examples {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", example.line]
            process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
            var env = ProcessInfo.processInfo.environment
            env["PATH"] = bin + ":" + (env["PATH"] ?? "/usr/bin:/bin")
            env.removeValue(forKey: "AUDIT_DB")
            process.environment = env
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == example.expectedStatus, "\(file): `\(example.line)`: \(stderr)")
        }
    }
}
