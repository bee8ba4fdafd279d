import Foundation
import Testing

@testable import AuditEngine

/// A history rewritten between two runs of an export is caught from the two signed
/// manifests alone: each run records the log's hash at the previous run's last seq.
@Suite("A log rewritten between export runs")
struct ExportRewriteTests {
    static let edit = "UPDATE events SET data = replace(data, '\"amount\":25', '\"amount\":1') WHERE seq = 25"

    /// Runs `export` twice with a consistent rewrite of event 25 in between (when
    /// `rewrite`), and returns the chain's problems, checked offline.
    func chainProblems(rewrite: Bool, _ export: (EventStore, Int) throws -> String) throws -> [String] {
        let dir = TempDir()
        var store: EventStore? = try exportStore(dir, count: 30)
        let first = try export(store!, 1)
        if rewrite {
            store = nil  // the attacker edits the file while nothing writes
            try rechain(dir.file("audit.db"), edit: Self.edit)
            store = try EventStore(path: dir.file("audit.db"))
            #expect(try store!.verify().events > 30, "a consistent rewrite passes verify (documented)")
            #expect(try store!.events(EventFilter(fromSeq: 25, toSeq: 25))[0].data.contains(#""amount":1,"#))
        }
        _ = try store!.append(NewEvent(stream: "late", type: "T"))
        let second = try export(store!, 2)
        let runs = try [first, second].map { try ExportVerifier.verify(directory: $0, trust: .embeddedKey, allowUnsigned: true) }
        if let previous = runs[1].manifest.previous {
            #expect(previous.chainSeq == runs[0].manifest.chain.seq)
            if !rewrite { #expect(previous.chainHead == runs[0].manifest.chain.head) }
        }
        return ExportChain.problems(runs)
    }

    static func folder(_ store: EventStore) -> String { URL(fileURLWithPath: store.path).deletingLastPathComponent().path + "/exports" }

    static let kinds: [(String, @Sendable (EventStore, Int) throws -> String)] = [
        ("incremental events", { store, _ in
            var request = eventsExport("trail", "", incremental: true)
            request.destination = .folder(folder(store))
            return try store.export(request).directory
        }),
        ("one-shot events of one name", { store, run in
            var request = eventsExport("ranges", "", selection: EventExportSelection(fromSeq: run == 1 ? 1 : 20))
            request.destination = .folder(folder(store))
            return try store.export(request).directory
        }),
        ("a query", { store, _ in
            var request = ExportRequest(
                name: "counts", content: .query(QuerySelection(name: "counts", sql: "SELECT type, count(*) AS n FROM events GROUP BY type")),
                destination: .folder(folder(store)))
            request.format = .csv
            return try store.export(request).directory
        }),
        ("a query at a past time", { store, _ in
            let request = ExportRequest(
                name: "then", content: .query(QuerySelection(name: "then", sql: "SELECT count(*) AS n FROM events", knownAt: try Timestamp(rfc3339: "2100-01-01T00:00:00Z"))),
                destination: .folder(folder(store)))
            return try store.export(request).directory
        }),
    ]

    @Test("each run records the log's hash at the previous run's last seq; untouched, the chain holds", arguments: kinds.map(\.0))
    func untouched(kind: String) throws {
        let export = Self.kinds.first { $0.0 == kind }!.1
        #expect(try chainProblems(rewrite: false, export) == [])
    }

    @Test("a consistent rewrite between two runs: the log was rewritten between run 1 and run 2", arguments: kinds.map(\.0))
    func rewritten(kind: String) throws {
        let export = Self.kinds.first { $0.0 == kind }!.1
        let found = try chainProblems(rewrite: true, export)
        #expect(found.count == 1 && found[0].contains("the log was rewritten between run 1 and run 2"), "\(found)")
    }

    @Test("a manifest of an older build (no previous.chain_head): an incremental run's chain.before still links it")
    func olderManifest() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 10)
        var runs: [ExportVerification] = []
        for _ in 1...2 {
            var request = eventsExport("trail", "", incremental: true)
            request.destination = .folder(dir.file("trail"))
            runs.append(try ExportVerifier.verify(directory: try store.export(request).directory, trust: .embeddedKey, allowUnsigned: true))
        }
        runs[1].manifest.previous?.chainSeq = nil
        runs[1].manifest.previous?.chainHead = nil
        #expect(ExportChain.problems(runs) == [])
        runs[1].manifest.chain.before = String(repeating: "ab", count: 32)
        #expect(ExportChain.problems(runs).contains { $0.contains("the log was rewritten between run 1 and run 2") })
    }
}
