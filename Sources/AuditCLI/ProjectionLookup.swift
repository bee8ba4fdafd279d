import ArgumentParser
import AuditEngine
import Foundation

/// Which projections a command can name: those with code in the projections folder and
/// those the database holds a table for. Names compare as their tables' names do,
/// without ASCII case.
struct KnownProjections {
    /// Names with a `NAME.lua` in the folder (empty when there is no folder).
    var inFolder: [String]
    /// Names the database has a live table for.
    var inDatabase: [String]
    var folder: String

    init(folder: String, store: EventStore?) throws {
        self.folder = folder
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        inFolder = entries.filter { $0.hasSuffix(".lua") }.map { String($0.dropLast(4)) }.sorted()
        inDatabase = try store.map { try $0.projectionRecords().live.keys.sorted() } ?? []
    }

    var all: [String] {
        var seen: Set<String> = []
        return (inFolder + inDatabase).filter { seen.insert(ProjectionNames.folded($0)).inserted }.sorted()
    }

    /// The projection's name as its file or table spells it; a usage error (exit 64)
    /// when `name` is not a projection here, with the closest name and the known ones.
    @discardableResult
    func require(_ name: String) throws -> String {
        let folded = ProjectionNames.folded(name)
        if let known = all.first(where: { ProjectionNames.folded($0) == folded }) { return known }
        throw UsageError(KnownProjections.unknownMessage(name, known: all, folder: folder, place: "\(folder)/ or the database"))
    }

    /// "no projection fnes in projections/: did you mean fines? (known: fines, stream_activity)".
    static func unknownMessage(_ name: String, known: [String], folder: String, place: String? = nil) -> String {
        let hint = closestProjection(to: name, in: known).map { ": did you mean \($0)?" } ?? ""
        let list = known.isEmpty ? "there are none: write \(folder)/\(name).lua, see docs/projections.md" : "known: \(known.joined(separator: ", "))"
        return "no projection \(name) in \(place ?? folder + "/")\(hint) (\(list))"
    }
}

/// The known name closest to `name`: the same name in another case, or a likely typo.
func closestProjection(to name: String, in known: [String]) -> String? {
    let folded = ProjectionNames.folded(name)
    if let sameFolded = known.first(where: { ProjectionNames.folded($0) == folded }) { return sameFolded }
    return closestName(to: name, in: known)
}
