import Foundation
import Testing

/// A read answers up to the chain head record. With the record deleted or edited
/// (outside the engine), no read takes it for an empty or shorter log: each exits 4
/// saying so, and nothing is written (an export run, a table, an event).
@Suite("Reads refuse a missing or edited chain head")
struct ChainHeadReadTests {
    static let edits = [
        "DELETE FROM chain_head", "UPDATE chain_head SET seq = 100", "UPDATE chain_head SET seq = 0",
        "UPDATE chain_head SET hash = zeroblob(32)",
    ]

    @Test("export, current and temporal reads, series, follow and replay exit 4 naming the chain head", arguments: edits)
    func refused(edit: String) throws {
        let dir = TempDir()
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/projections", withDestinationPath: repositoryRoot + "/projections")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/queries", withDestinationPath: repositoryRoot + "/queries")
        _ = try audit(["init"], in: dir.path)
        _ = try audit(["ingest", repositoryRoot + "/docs/data/road-fines.jsonl"], in: dir.path)
        #expect(try audit(["replay"], in: dir.path).status == 0)
        let db = dir.path + "/audit.db"
        _ = try sqlite(edit, db)
        let before = try sqlite("SELECT (SELECT count(*) FROM events) || ',' || (SELECT count(*) FROM export_runs) || ',' || (SELECT group_concat(position) FROM projections)", db)
        for command in [
            ["export", "--out", dir.path + "/ex"], ["export", "--name", "t", "--incremental", "--into", dir.path + "/runs"],
            ["query", "outstanding_fines"], ["state", "fine_balances", "S45359"],
            ["query", "outstanding_fines", "--as-of", "2005-12-31"], ["state", "fine_balances", "--as-of", "2005-12-31"],
            ["query", "outstanding_fines", "--as-of-each", "year", "--from", "2004-01-01", "--to", "2005-12-31"],
            ["events", "--follow", "--from-seq", "390"], ["replay", "--rebuild"],
        ] {
            let result = try audit(command, in: dir.path)
            #expect(result.status == 4, "\(edit): \(command): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("chain head record"), "\(edit): \(command): \(result.stderr)")
        }
        #expect(try sqlite("SELECT (SELECT count(*) FROM events) || ',' || (SELECT count(*) FROM export_runs) || ',' || (SELECT group_concat(position) FROM projections)", db) == before)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ex"))
    }
}
