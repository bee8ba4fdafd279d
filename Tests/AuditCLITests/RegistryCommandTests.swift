import Foundation
import Testing

/// `replay` builds the projections the database holds, not whatever folder it runs from
/// (DECISIONS 15): a folder lacking some or holding others is warned about, naming both
/// sets, and newcomers are built only with --add — except in a database holding none.
@Suite("The database registers its projections")
struct RegistryCommandTests {
    static func counter(_ type: String) -> String {
        "return { version = 1, on = { \(type) = function(s, e) s.n = (s.n or 0) + 1 end } }"
    }

    func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/other", withIntermediateDirectories: true)
        try Self.counter("A").write(toFile: dir.path + "/projections/alpha.lua", atomically: true, encoding: .utf8)
        try Self.counter("B").write(toFile: dir.path + "/projections/beta.lua", atomically: true, encoding: .utf8)
        try Self.counter("A").write(toFile: dir.path + "/other/gamma.lua", atomically: true, encoding: .utf8)
        try Self.counter("A").write(toFile: dir.path + "/other/alpha.lua", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path).status == 0)
        for type in ["A", "B"] {
            #expect(try audit(["append", "--stream", "s", "--type", type, "--data", "{}"], in: dir.path).status == 0)
        }
        return dir
    }

    @Test("the first replay registers the folder's projections")
    func firstReplayRegisters() throws {
        let dir = try workspace()
        let first = try audit(["replay"], in: dir.path)
        #expect(first.status == 0 && first.stderr.isEmpty, "\(first.stderr)")
        #expect(first.stdout.contains(#""projection":"alpha","status":"rebuilt""#))
        #expect(first.stdout.contains(#""projection":"beta","status":"rebuilt""#))
        #expect(try sqlite("SELECT count(*) FROM events WHERE type = 'CodeBuilt'", dir.path + "/audit.db") == "2")
    }

    @Test("a folder that differs is warned about, naming both sets; its newcomer is built only with --add")
    func otherFolderWarned() throws {
        let dir = try workspace()
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let other = try audit(["replay", "--projections", "other"], in: dir.path)
        #expect(other.status == 0, "\(other.stderr)")
        #expect(other.stderr.contains("holds projections alpha, beta"), "\(other.stderr)")
        #expect(other.stderr.contains("holds alpha, gamma"), "\(other.stderr)")
        #expect(other.stderr.contains("lacks beta") && other.stderr.contains("gamma, which the database does not"), "\(other.stderr)")
        #expect(other.stdout.contains(#""projection":"alpha""#) && !other.stdout.contains("gamma"))
        #expect(try sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'gamma'", dir.path + "/audit.db") == "0")
        // Named without --add: a usage error, nothing built.
        let named = try audit(["replay", "--projections", "other", "gamma"], in: dir.path)
        #expect(named.status == 64 && named.stderr.contains("--add gamma"), "\(named.stderr)")
        #expect(try sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'gamma'", dir.path + "/audit.db") == "0")
        let added = try audit(["replay", "--projections", "other", "--add"], in: dir.path)
        #expect(added.status == 0 && added.stdout.contains(#""projection":"gamma","status":"rebuilt""#), "\(added.stdout)")
        // Now registered: the original folder lacks it, and is told so.
        let back = try audit(["replay"], in: dir.path)
        #expect(back.status == 0 && back.stderr.contains("lacks gamma"), "\(back.stderr)")
    }

    @Test("the same folder again says nothing")
    func sameFolderQuiet() throws {
        let dir = try workspace()
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let again = try audit(["replay"], in: dir.path)
        #expect(again.status == 0 && again.stderr.isEmpty, "\(again.stderr)")
        #expect(again.stdout.contains(#""status":"up_to_date""#))
    }
}
