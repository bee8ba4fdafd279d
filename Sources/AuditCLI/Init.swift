import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the database, and projections/ and queries/ with a working example of each; running it again changes nothing.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions

        func run() throws {
            let path = global.databasePath
            let existed = FileManager.default.fileExists(atPath: path)
            let store = try openStore(global, create: true)
            let head = try store.head()
            warn("audit: \(existed ? "already initialised" : "created") \(store.path) (\(head.seq) events)")
            try starter(folder: workspace.projections, file: "stream_activity.lua", text: StarterFiles.projection)
            try starter(folder: workspace.queries, file: "busiest_streams.sql", text: StarterFiles.query)
        }

        /// Creates `folder` and, when the folder is new, its starter file.
        private func starter(folder: String, file: String, text: String) throws {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) { return }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try text.write(toFile: folder + "/" + file, atomically: true, encoding: .utf8)
            warn("audit: created \(folder)/\(file)")
        }
    }
}

/// The examples `audit init` puts in a new workspace.
enum StarterFiles {
    static let projection = """
        -- A starter projection: one row per stream of the example log
        -- (docs/data/road-fines.jsonl), with how many events it has and when it began
        -- and last changed. Copy it, rename it, and list the event types you care
        -- about in `on`. Guide: docs/projections.md
        local function touch(s, e)
          s.events = s.events + 1
          s.first_at = s.first_at or e.occurred_at
          s.last_at = e.occurred_at
          s.last_type = e.type
        end

        return {
          version = 1,                                    -- bump when you change the logic
          key = "stream",                                 -- one state per stream
          init = function(stream) return { events = 0 } end,
          on = {                                          -- only these types are delivered
            ["Create Fine"] = touch,
            ["Send Fine"] = touch,
            ["Insert Fine Notification"] = touch,
            ["Add penalty"] = touch,
            ["Payment"] = touch,
            ["Send for Credit Collection"] = touch,
          },
          columns = { events = "integer", first_at = "text", last_at = "text", last_type = "text" },
        }

        """

    static let query = """
        -- A starter query over the starter projection: the streams with the most events.
        -- Run it: audit query busiest_streams --param limit=10
        SELECT key AS stream, events, first_at, last_at, last_type
        FROM stream_activity
        ORDER BY events DESC, key
        LIMIT :limit;

        """
}
