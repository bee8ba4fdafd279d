import Foundation
import Testing

@testable import AuditEngine

@Suite("Incremental exports")
struct IncrementalExportTests {
    @Test("many runs with appends in between: no gap, no overlap, a chain of manifests, and every event exactly once")
    func gapFreeChain() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 10)
        var verified: [ExportVerification] = []
        var exported: [Int64] = []
        for run in 1...12 {
            // 0 to 4 new business events between runs (the export's own event is one more).
            for i in 0..<(run % 5) { try store.append(NewEvent(stream: "s-\(run)", type: "T", data: .object([JSONMember("i", .int(Int64(i)))]))) }
            var request = eventsExport("trail", "", incremental: true)
            request.destination = .folder(dir.file("trail"))
            let result = try store.export(request)
            #expect(result.directory.hasSuffix("/trail/trail-" + String(format: "%06d", run)))
            let v = try ExportVerifier.verify(directory: result.directory, trust: .embeddedKey, allowUnsigned: true, store: store)
            #expect(v.chainRecomputed && v.checkedAgainstStore)
            verified.append(v)
            let lines = try String(contentsOfFile: result.directory + "/events-000001.jsonl", encoding: .utf8).split(separator: "\n")
            exported += lines.map { Int64(try! JSONParser.parse(String($0))["seq"].flatMap { if case .int(let n) = $0 { n } else { nil } }!) }
        }
        #expect(ExportChain.problems(verified) == [])
        // Every event up to the last run's watermark, exactly once and in order.
        let last = verified.last!.manifest.selection.toSeq
        #expect(exported == Array(1...last))
        // Each run after the first starts with the previous run's ExportCompleted event.
        let second = try String(contentsOfFile: verified[1].directory + "/events-000001.jsonl", encoding: .utf8)
        #expect(second.split(separator: "\n")[0].contains(#""type":"ExportCompleted""#))
        // A gap in the chain is reported: drop run 5.
        let broken = verified.filter { $0.manifest.run != 5 }
        #expect(ExportChain.problems(broken).contains { $0.contains("run 5 is missing") })
    }

    @Test("a replaced run breaks the chain at the next run")
    func replacedRun() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        var runs: [ExportVerification] = []
        for _ in 1...3 {
            var request = eventsExport("trail", "", incremental: true)
            request.destination = .folder(dir.file("trail"))
            runs.append(try ExportVerifier.verify(directory: try store.export(request).directory, trust: .embeddedKey, allowUnsigned: true))
        }
        runs[1].manifestSHA256 = String(repeating: "0", count: 64)
        #expect(ExportChain.problems(runs).contains { $0.contains("run 2 was replaced") })
    }

    @Test("an incremental series keeps its selection and takes no range")
    func seriesRules() throws {
        let dir = TempDir()
        let store = try exportStore(dir, count: 3)
        _ = try store.export(eventsExport("trail", dir.file("a"), selection: EventExportSelection(type: "Paid"), incremental: true))
        #expect { try store.export(eventsExport("trail", dir.file("b"), incremental: true)) } throws: {
            ($0 as? ExportError)?.category == .invalidInput
        }
        #expect { try store.export(eventsExport("trail", dir.file("c"), selection: EventExportSelection(type: "Paid", toSeq: 2), incremental: true)) } throws: {
            ($0 as? ExportError)?.message.contains("takes no --from-seq") == true
        }
        #expect { try store.export(eventsExport("trail", dir.file("e"), selection: EventExportSelection(type: "Paid"))) } throws: {
            ($0 as? ExportError)?.message.contains("is incremental") == true
        }
        let next = try store.export(eventsExport("trail", dir.file("d"), selection: EventExportSelection(type: "Paid"), incremental: true))
        #expect(next.manifest.run == 2 && next.manifest.selection.fromSeq == 4)
    }
}
