import Foundation

extension ExportScheduler {
    /// What would make a run of `export` fail, checked now without running it: its saved
    /// query (readable, compiles against the database, so every projection table it reads
    /// exists, and its parameters match), its signing key (present, readable, a key, and
    /// readable by its owner only) and its destination (a folder that is, or can be
    /// made, writable). Each problem is one sentence; none means none was found.
    public func problems(of export: ScheduledExport) -> [String] {
        var problems: [String] = []
        if case .query(let name, let parameters) = export.what {
            do {
                let sql = try savedQuery(name, export: export)
                try checkQuery(sql, parameters: parameters, source: SavedQuery.file(name, in: config.queriesDirectory))
            } catch {
                problems.append(Self.message(error))
            }
        }
        if let key = export.signingKey {
            do {
                _ = try SigningKey.load(file: key)
            } catch {
                problems.append(Self.message(error))
            }
        }
        if let problem = Self.destinationProblem(export.destination) { problems.append(problem) }
        return problems
    }

    private static func message(_ error: any Error) -> String {
        (error as? ExportError)?.message ?? "\(error)"
    }

    private struct Compiled: Error {}

    /// Compiles `sql` and checks its parameters as a run would, stopping before it reads a row.
    private func checkQuery(_ sql: String, parameters: [String: String], source: String) throws {
        do {
            try store.query(sql: sql, parameters: parameters, source: source, header: { _ in throw Compiled() }, row: { _ in })
        } catch is Compiled {
            return
        }
    }

    /// Why `path` cannot take a run directory, or nil: it must be a writable folder, or
    /// not exist yet under a writable folder.
    static func destinationProblem(_ path: String) -> String? {
        var existing = URL(fileURLWithPath: path).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        while !FileManager.default.fileExists(atPath: existing, isDirectory: &isDirectory) {
            existing = (existing as NSString).deletingLastPathComponent
        }
        let role = existing == URL(fileURLWithPath: path).standardizedFileURL.path ? "the destination" : "the destination's parent"
        guard isDirectory.boolValue else { return "\(role) \(existing) is not a directory (destination \(path))" }
        guard access(existing, W_OK | X_OK) == 0 else {
            return "\(role) \(existing) is not writable: \(String(cString: strerror(errno))) (destination \(path))"
        }
        return nil
    }
}
