import Foundation
import Testing

/// Every `sh` example in the docs runs, in order, against the real binary, so the docs
/// cannot drift from what the commands do. A line expected to fail says so with a
/// trailing `# exits N`. A `cd DIR` line changes the folder the following lines run in,
/// and a block whose info string names a file (```lua file=projections/fines.lua) is
/// written there before the lines after it run, so the files a guide shows are the
/// ones its commands use. Other blocks (output, ```shell install steps that CI itself
/// performs) are not run.
@Suite("Documentation examples")
struct DocsExamplesTests {
    struct Example: CustomStringConvertible {
        var line: String
        var expectedStatus: Int32
        /// For a file block: its contents (`line` is its path).
        var contents: String?
        var description: String { line }
    }

    /// The shell commands of a Markdown file's ```sh blocks (continuation lines joined)
    /// and its file blocks, in order.
    static func examples(in file: String) throws -> [Example] {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/" + file, encoding: .utf8)
        var result: [Example] = []
        var inBlock = false
        var inOtherBlock = false
        var fileBlock: (path: String, lines: [String])?
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.hasPrefix("```") {
                if let block = fileBlock {
                    result.append(Example(line: block.path, expectedStatus: 0, contents: block.lines.joined(separator: "\n") + "\n"))
                    fileBlock = nil
                } else if inBlock || inOtherBlock {
                    inBlock = false
                    inOtherBlock = false
                } else if line == "```sh" {
                    inBlock = true
                } else if let range = line.range(of: " file=") {
                    fileBlock = (String(line[range.upperBound...]), [])
                } else {
                    inOtherBlock = true
                }
                continue
            }
            if fileBlock != nil { fileBlock!.lines.append(line); continue }
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

    @Test(
        "the examples of each guide run as documented",
        arguments: ["cli.md", "projections.md", "events.md", "testing.md", "getting-started.md", "time.md", "exports.md"])
    func guide(file: String) throws {
        let examples = try Self.examples(in: file)
        #expect(examples.count >= 3)
        let dir = TempDir()
        for name in ["docs", "projections", "queries"] {
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/" + name, withDestinationPath: repositoryRoot + "/" + name)
        }
        let bin = URL(fileURLWithPath: auditExecutable).deletingLastPathComponent().path
        var folder = dir.path
        for example in examples {
            if let contents = example.contents {
                let path = folder + "/" + example.line
                let resolved = URL(fileURLWithPath: path).deletingLastPathComponent().resolvingSymlinksInPath().path
                try #require(!resolved.hasPrefix(repositoryRoot), "\(file): a file block would write into the repository: \(example.line)")
                try FileManager.default.createDirectory(
                    atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
                try contents.write(toFile: path, atomically: true, encoding: .utf8)
                continue
            }
            if example.line.hasPrefix("cd ") {
                folder = URL(fileURLWithPath: String(example.line.dropFirst(3)), relativeTo: URL(fileURLWithPath: folder + "/")).absoluteURL.standardized.path
                #expect(FileManager.default.fileExists(atPath: folder), "\(file): `\(example.line)`: no such folder")
                continue
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", example.line]
            process.currentDirectoryURL = URL(fileURLWithPath: folder)
            process.environment = commandEnvironment(searchedFirst: bin)
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
