import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the database (and the projections/ and queries/ folders); running it again changes nothing.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let path = global.databasePath
            let existed = FileManager.default.fileExists(atPath: path)
            let store = try openStore(global, create: true)
            let head = try store.head()
            let note = existed ? "already initialised" : "created"
            FileHandle.standardError.write(Data("audit: \(note) \(store.path) (\(head.seq) events)\n".utf8))
        }
    }
}
