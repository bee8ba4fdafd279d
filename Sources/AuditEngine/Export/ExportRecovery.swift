import Crypto
import Foundation
import GRDB

extension EventStore {
    /// Resolves the runs of export `name` that a crash or kill left unfinished; the
    /// caller holds the export's lock, so none of them is still running.
    ///
    /// - `started`: it was writing its files. Its partial directory is removed and the
    ///   run is recorded as failed, with an `ExportFailed` event; the watermark stays.
    /// - `pending`: its directory was complete. If it reached its place (or is still
    ///   complete under its temporary name, which is then renamed), and its manifest
    ///   has the recorded hash, it is completed now (an `ExportCompleted` event with
    ///   `"recovered": true`); otherwise it failed as above.
    func recoverExports(name: String) throws {
        let unfinished = try readTransaction { db in try ExportRuns.unfinished(db, name: name) }
        for run in unfinished {
            var completed = false
            if run.status == .pending, let expected = run.manifestSHA256 {
                if !FileManager.default.fileExists(atPath: run.directory), manifestHash(in: run.partial) == expected {
                    if rename(run.partial, run.directory) == 0 {
                        ExportFileWriter.syncDirectory((run.directory as NSString).deletingLastPathComponent)
                    }
                }
                completed = manifestHash(in: run.directory) == expected
            }
            if !completed { try? FileManager.default.removeItem(atPath: run.partial) }
            try writeTransaction { db in
                if completed {
                    try ExportRuns.finish(db, id: run.id, status: .completed)
                    try appendExportEvent(db, name: name, type: "ExportCompleted", data: [
                        JSONMember("run", .int(run.run)), JSONMember("directory", .string(run.directory)),
                        JSONMember("manifest_sha256", .string(run.manifestSHA256 ?? "")), JSONMember("from_seq", .int(run.fromSeq)),
                        JSONMember("to_seq", .int(run.toSeq)), JSONMember("rows", .int(run.rows ?? 0)), JSONMember("recovered", .bool(true)),
                    ])
                } else {
                    let reason = "interrupted: the export process stopped before the export was complete (killed or crashed); its partial directory was removed and the watermark did not advance"
                    try ExportRuns.finish(db, id: run.id, status: .failed, error: reason)
                    try appendExportEvent(db, name: name, type: "ExportFailed", data: [
                        JSONMember("run", .int(run.run)), JSONMember("directory", .string(run.directory)), JSONMember("error", .string(reason)),
                        JSONMember("from_seq", .int(run.fromSeq)), JSONMember("to_seq", .int(run.toSeq)),
                    ])
                }
            }
        }
    }

    private func manifestHash(in directory: String) -> String? {
        guard let data = FileManager.default.contents(atPath: directory + "/manifest.json") else { return nil }
        return Hex.encode(Array(SHA256.hash(data: data)))
    }
}
