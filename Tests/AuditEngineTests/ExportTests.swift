import Crypto
import Foundation
import Testing

@testable import AuditEngine

/// A store with `count` events over a few streams and types.
func exportStore(_ dir: TempDir, count: Int = 50) throws -> EventStore {
    let store = try dir.store()
    let lines = (1...count).map { i in
        eventLine(stream: "order-\(i % 7)", type: i % 3 == 0 ? "Paid" : "Placed", data: #"{"amount":\#(i),"note":"a,b \"c\""}"#,
                  extra: #","occurred_at":"2024-01-\#(String(format: "%02d", i % 28 + 1))T10:00:00Z""#)
    }
    try store.ingest(path: dir.jsonl("events.jsonl", lines), missingIds: .generate)
    return store
}

func eventsExport(_ dir: String, selection: EventExportSelection = EventExportSelection(), format: ExportFormat = .jsonl,
                  incremental: Bool = false, key: SigningKey? = nil, rowsPerFile: Int = 1_000_000) -> ExportRequest {
    eventsExport("events", dir, selection: selection, format: format, incremental: incremental, key: key, rowsPerFile: rowsPerFile)
}

func eventsExport(_ name: String, _ dir: String, selection: EventExportSelection = EventExportSelection(), format: ExportFormat = .jsonl,
                  incremental: Bool = false, key: SigningKey? = nil, rowsPerFile: Int = 1_000_000) -> ExportRequest {
    var request = ExportRequest(
        name: name, content: .events(selection), format: format, destination: .directory(dir), incremental: incremental, signingKey: key)
    request.maxRowsPerFile = rowsPerFile
    return request
}

/// The problems verify reports, or [] when it verifies: with `key` the trusted key,
/// else the manifest's own; unsigned exports are accepted unless `allowUnsigned` is false.
func problems(_ directory: String, key: PublicKey? = nil, allowUnsigned: Bool = true, store: EventStore? = nil) -> [String] {
    do {
        _ = try ExportVerifier.verify(directory: directory, trust: key.map { .publicKey($0) } ?? .embeddedKey, allowUnsigned: allowUnsigned, store: store)
        return []
    } catch let failure as ExportVerificationFailure {
        return failure.problems
    } catch {
        return ["unexpected: \(error)"]
    }
}

@Suite("Exports")
struct ExportTests {
    @Test("an events export writes data, a manifest naming every file, and verifies offline and against the store", arguments: ExportFormat.allCases)
    func roundTrip(format: ExportFormat) throws {
        let dir = TempDir()
        let store = try exportStore(dir)
        let key = SigningKey()
        let result = try store.export(eventsExport(dir.file("out"), format: format, key: key, rowsPerFile: 20))
        let m = result.manifest
        #expect(m.rows == 50 && m.files.map(\.rows) == [20, 20, 10])
        #expect(m.selection.fromSeq == 1 && m.selection.toSeq == 50)
        #expect(m.chain.head == (try store.events(EventFilter(fromSeq: 50, toSeq: 50)))[0].hashHex)
        #expect(m.publicKey == key.publicKeyBase64 && m.engineVersion == EngineVersion.current)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted()
        #expect(names == ["events-000001.\(format)", "events-000002.\(format)", "events-000003.\(format)", "manifest.json", "manifest.sig"])
        let trusted = try PublicKey(argument: key.publicKeyBase64)
        let verified = try ExportVerifier.verify(directory: dir.file("out"), trust: .publicKey(trusted), store: store)
        #expect(verified.signature == .trusted && verified.chainRecomputed && verified.checkedAgainstStore)
        #expect(verified.manifestSHA256 == result.manifestSHA256)
        // The run is in the log.
        let logged = try store.events(EventFilter(stream: "audit-export-events"))
        #expect(logged.map(\.type) == ["ExportCompleted"])
        #expect(logged[0].data.contains(#""manifest_sha256":"\#(result.manifestSHA256)""#))
    }

    @Test("filters, seq range, as-of and known-at select exactly what `events` selects, and verify against the store")
    func selections() throws {
        let dir = TempDir()
        let store = try exportStore(dir)
        let cases: [EventExportSelection] = [
            EventExportSelection(stream: "order-3"), EventExportSelection(type: "Paid"), EventExportSelection(fromSeq: 10, toSeq: 19),
            EventExportSelection(asOf: try Timestamp(dateOrTime: "2024-01-10")), EventExportSelection(knownAt: .now()),
        ]
        for (i, selection) in cases.enumerated() {
            let out = dir.file("out\(i)")
            let result = try store.export(eventsExport("sel\(i)", out, selection: selection))
            let expected = try store.events(EventFilter(
                stream: selection.stream, type: selection.type, fromSeq: selection.fromSeq, toSeq: selection.toSeq ?? 50,
                asOf: selection.asOf, knownAt: selection.knownAt))
            let data = try String(contentsOfFile: out + "/events-000001.jsonl", encoding: .utf8)
            #expect(data == expected.map { $0.jsonLine + "\n" }.joined(), "selection \(i)")
            #expect(result.manifest.rows == Int64(expected.count))
            #expect(problems(out, store: store) == [], "selection \(i)")
        }
    }

    @Test("a known-at in the past stops the range at the last event recorded by then")
    func knownAtBound() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 5)
        let cut = try store.events().last!.recordedAt
        usleep(5_000)
        try store.append(NewEvent(stream: "late", type: "Late"))
        let result = try store.export(eventsExport(dir.file("out"), selection: EventExportSelection(knownAt: cut)))
        #expect(result.manifest.selection.toSeq == 5 && result.manifest.rows == 5)
        #expect(problems(dir.file("out"), store: store) == [])
    }

    @Test("an existing directory is refused, and nothing is recorded as completed")
    func existingDirectory() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: true)
        #expect(throws: ExportError.self) { try store.export(eventsExport(dir.file("out"))) }
        #expect(try store.exportRuns().isEmpty)
    }

    @Test("a query export records the query's hash and each projection's version, code hash and position, now or at a past time")
    func queryExport() throws {
        let dir = TempDir()
        let store = try exportStore(dir)
        let projection = try writeProjection(dir, name: "totals", """
            return { version = 3, on = { Placed = function(s, e) s.total = (s.total or 0) + e.data.amount end }, columns = { total = "integer" } }
            """)
        _ = try store.replay([projection])
        let sql = "SELECT key, total FROM totals ORDER BY key"
        let request = ExportRequest(name: "totals-report", content: .query(QuerySelection(name: "totals", sql: sql)), format: .csv, destination: .directory(dir.file("q")))
        let m = try store.export(request).manifest
        #expect(m.kind == .query && m.rows == 7)
        #expect(m.query?.sqlSHA256 == Hex.encode(Array(SHA256.hash(data: Array(sql.utf8)))))
        #expect(m.query?.projections == [ExportManifest.ProjectionUse(name: "totals", version: 3, codeHash: projection.codeHash, position: 51)])  // 50 events and the build's CodeBuilt
        #expect(try String(contentsOfFile: dir.file("q/query.sql"), encoding: .utf8) == sql)
        #expect(try String(contentsOfFile: dir.file("q/code--totals--totals.lua"), encoding: .utf8) == projection.code.script.text)
        // The completed run recorded the text, after its chain.seq (as its outcome is).
        #expect(try store.recordedQuery("totals")?.text == sql)
        #expect(try store.recordedQuery("totals")!.seq > m.chain.seq)
        #expect(problems(dir.file("q"), store: store) == [])
        // At a past time, the projections are folded as they were: the same rows as a
        // temporal query, and the manifest names the projection's code and the last seq.
        let cut = try store.events(EventFilter(fromSeq: 20, toSeq: 20))[0].occurredAt
        let timed = ExportRequest(
            name: "timed", content: .query(QuerySelection(name: "totals", sql: sql, asOf: cut, projections: [projection])),
            format: .csv, destination: .directory(dir.file("t")))
        let tm = try store.export(timed).manifest
        var expected: [String] = []
        try store.query(sql: sql, at: TemporalSelection(asOf: cut), projections: [projection], header: { _ in }, row: { values in
            expected.append(CSVText.record(values.map(\.text)))
        })
        let written = try String(contentsOfFile: dir.file("t/result-000001.csv"), encoding: .utf8).split(separator: "\n").dropFirst().map(String.init)
        #expect(written == expected && tm.rows == Int64(expected.count) && tm.selection.asOf == cut)
        #expect(tm.query?.projections.map(\.codeHash) == [projection.codeHash])
        #expect(tm.query?.projections.first?.position == tm.selection.toSeq)
        #expect(problems(dir.file("t"), store: store) == [])
    }

    func writeProjection(_ dir: TempDir, name: String, _ source: String) throws -> Projection {
        try FileManager.default.createDirectory(atPath: dir.file("projections"), withIntermediateDirectories: true)
        try source.write(toFile: dir.file("projections/\(name).lua"), atomically: true, encoding: .utf8)
        return try Projection.load(file: dir.file("projections/\(name).lua"))
    }
}
