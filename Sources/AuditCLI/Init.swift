import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the database, or upgrade one an older audit made, and projections/ and queries/ with a working example of each.",
            discussion: """
                On a database this build made, it changes nothing. On one an older build made, it verifies the \
                whole log, upgrades the schema, verifies again (same events, same head) and says what it did; \
                a log that does not verify is not touched (exit 4). A file that is not an audit database is \
                refused (exit 1).
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var workspace: WorkspaceOptions

        func run() throws {
            let path = global.databasePath
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
            if size == nil || size == 0 {
                let store = try EventStore(path: path, create: true)
                warn("audit: created \(store.path) (\(try store.head().seq) events)")
            } else {
                let report: UpgradeReport
                do {
                    report = try EventStore.upgrade(path: path, progress: stderrIsTerminal ? Self.showProgress : nil)
                } catch StoreError.notAuditDatabase(let path, let reason) {
                    throw StoreError.notAuditDatabase(
                        path: path, reason: "\(reason); audit init makes a database only where there is none, or an empty file")
                }
                if stderrIsTerminal { ProgressLine.clear() }
                if report.applied.isEmpty {
                    warn("audit: already initialised \(path) (\(report.events) events)")
                } else {
                    warn("audit: upgraded \(path) from schema \(report.from) to \(report.applied.last ?? ""): verified \(report.events) events before and after, head \(report.head) unchanged")
                    for migration in report.applied {
                        warn("audit:   \(migration): \(EventStore.migrationSummary(migration))")
                    }
                }
            }
            try starter(folder: workspace.projections, files: [
                ("stream_activity.lua", StarterFiles.projection), ("stream_activity.test", StarterFiles.test),
            ])
            try starter(folder: workspace.queries, files: [("busiest_streams.sql", StarterFiles.query)])
        }

        @Sendable static func showProgress(_ p: UpgradeProgress) {
            warnInPlace("init: \(p.step): \(p.done) of \(p.total) events")
        }

        /// Creates `folder` and, when the folder is new, its starter files.
        private func starter(folder: String, files: [(name: String, text: String)]) throws {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) { return }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for file in files {
                try file.text.write(toFile: folder + "/" + file.name, atomically: true, encoding: .utf8)
                warn("audit: created \(folder)/\(file.name)")
            }
        }
    }
}

/// The examples `audit init` puts in a new workspace.
enum StarterFiles {
    static let projection = """
        -- A starter projection: one row per stream, with how many events it has, when
        -- it began and last changed, and the type of its last event. It works on any
        -- log: the catch-all handler ["*"] receives every event type. Copy it, rename
        -- it, and give the types you care about handlers of their own; a projection
        -- with only named handlers is sent only those types, which replays faster.
        -- Guide: docs/projections.md
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
          on = {
            ["*"] = touch,                                -- every type without a handler of its own
          },
          columns = { events = "integer", first_at = "text", last_at = "text", last_type = "text" },
        }

        """

    static let test = """
        # Tests of stream_activity.lua: run them with `audit test`. Guide: docs/testing.md
        # A case's events (JSON lines, as for `audit ingest`; data, ids and times may be
        # left out) are replayed into an empty store, then each `expect` line is checked:
        #   expect KEY {…}         the key's state, exactly
        #   expect KEY has {…}     only these fields (null: the field must be absent)
        #   expect KEY absent      no event reached the key
        #   expect error at N "…"  the replay fails at the case's Nth event, with this text

        case a stream's events are counted, with its first and last times
        {"stream":"S1","type":"Create Fine","data":{"amount":31.3},"occurred_at":"2000-03-14T23:00:00Z"}
        {"stream":"S1","type":"Payment","data":{"paymentAmount":31.3},"occurred_at":"2000-05-02T10:00:00Z"}
        expect S1 {"events":2,"first_at":"2000-03-14T23:00:00.000Z","last_at":"2000-05-02T10:00:00.000Z","last_type":"Payment"}

        case every event type is counted, whatever its name
        {"stream":"S2","type":"OrderPlaced"}
        {"stream":"S2","type":"an event type nobody listed"}
        expect S2 has {"events":2,"last_type":"an event type nobody listed"}
        expect S3 absent

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
