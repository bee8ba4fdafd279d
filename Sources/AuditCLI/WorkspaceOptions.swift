import ArgumentParser
import AuditEngine
import Foundation

/// Where projections and saved queries live.
struct WorkspaceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The projections folder.", valueName: "dir"))
    var projections = "projections"

    @Option(help: ArgumentHelp("The saved queries folder.", valueName: "dir"))
    var queries = "queries"

    /// Every projection that loads, each one that does not named in a warning on
    /// stderr (a question fails only if it reads one of those).
    func loadableProjections() throws -> [Projection] {
        let loaded = try loadProjections()
        for case .failure(let error) in loaded { warn("audit: warning: \(error)") }
        return loaded.compactMap { try? $0.get() }
    }

    /// Loads the named projections (all when `names` is empty). Unknown names are a
    /// usage error; a file that fails to load is returned as a failure. `limits` (the
    /// limit options) replace those of the projections, each only its own limit: the
    /// top levels are run under them too.
    func loadProjections(_ names: [String] = [], limits: LuaLimitOverrides? = nil) throws -> [Result<Projection, ProjectionError>] {
        try requireProjectionsFolder()
        let all = try Projection.loadAll(directory: projections, defaultLimits: limits.overDefaults)
        guard !names.isEmpty else { return all }
        // Names compare as their tables' names do: without case.
        let byName = Dictionary(grouping: all, by: { ProjectionNames.folded(projectionName($0)) })
        return try names.flatMap { name in
            guard let found = byName[ProjectionNames.folded(name)] else {
                throw UsageError(KnownProjections.unknownMessage(name, known: all.map(projectionName), folder: projections))
            }
            return found
        }
    }
}

extension WorkspaceOptions {
    /// A usage error (exit 64) when the projections folder is missing: the command ran
    /// in the wrong directory, or needs --projections.
    func requireProjectionsFolder() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: projections, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UsageError("no projections folder at \(projections) (run `audit init`, or pass --projections DIR)")
        }
    }
}

func projectionName(_ result: Result<Projection, ProjectionError>) -> String {
    switch result {
    case .success(let p): return p.name
    case .failure(let e): return e.projection
    }
}

/// Writes a line to stderr (never fails: see `StandardStreams.writeError`).
func warn(_ message: String) {
    StandardStreams.writeError(message + "\n")
}

/// Rewrites the one progress line on stderr.
func warnInPlace(_ text: String) { ProgressLine.show(text) }

/// Whether stderr is a terminal (progress is shown only then).
var stderrIsTerminal: Bool { isatty(2) == 1 }
