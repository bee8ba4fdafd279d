import Foundation
import Testing

@testable import AuditEngine

/// A fresh directory under the system's temporary folder, removed when the test ends.
final class TempDir {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "audit-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `lines` as a JSONL file and returns its path.
    func jsonl(_ name: String, _ lines: [String]) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        return p
    }

    /// A new store in this directory.
    func store(_ name: String = "audit.db") throws -> EventStore {
        try EventStore(path: file(name), create: true)
    }
}

/// The repository's root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A real example log shipped in docs/data.
func exampleLog(_ name: String) -> String { repositoryRoot + "/docs/data/" + name }

/// Runs the sqlite3 command-line tool on `db` (it edits the file as an attacker would).
@discardableResult
func sqlite3CLI(_ db: String, _ sql: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    process.arguments = [db, sql]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else { throw CLIFailure(text) }
    return text
}

struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A short valid JSONL event line.
func eventLine(
    stream: String = "order-1", type: String = "OrderPlaced", data: String = #"{"amount":10}"#, extra: String = ""
) -> String {
    #"{"stream":"\#(stream)","type":"\#(type)","data":\#(data)\#(extra)}"#
}
