import Foundation
import Testing

/// Real processes racing on one database file, as two report jobs or producers would.
@Suite("Concurrent processes")
struct ConcurrencyTests {
    @Test("processes appending with the same expected version: exactly one wins, the others exit 3")
    func expectedVersionRace() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["append", "--stream", "acct-1", "--type", "Opened", "--data", "{}"], in: dir.path)
        for round in 1...3 {
            let version = String(round)
            let racers = try (0..<6).map { i in
                try RunningCommand(
                    ["append", "--stream", "acct-1", "--type", "Deposited", "--data", #"{"by":\#(i)}"#, "--expected-version", version],
                    in: dir.path)
            }
            let results = racers.map { $0.wait() }
            #expect(results.filter { $0.status == 0 }.count == 1, "round \(round): \(results.map(\.stderr))")
            let losers = results.filter { $0.status != 0 }
            #expect(losers.count == 5)
            #expect(losers.allSatisfy { $0.status == 3 && $0.stderr.contains("the stream is at version \(round + 1)") })
        }
        let verify = try audit(["verify"], in: dir.path)
        #expect(verify.stdout.contains(#""events":4"#))
    }

    @Test("processes appending and ingesting at once: every event lands once, seq stays gap-free, the chain verifies")
    func concurrentWriters() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        let file = dir.path + "/batch.jsonl"
        let lines = (0..<2_000).map { #"{"stream":"bulk-\#($0 % 50)","type":"T","data":{"i":\#($0)}}"# }
        _ = FileManager.default.createFile(atPath: file, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        var writers = try (0..<2).map { _ in try RunningCommand(["ingest", "--generate-ids", file], in: dir.path) }
        writers += try (0..<6).map { i in
            try RunningCommand(["append", "--stream", "single-\(i)", "--type", "T", "--data", "{}"], in: dir.path)
        }
        let results = writers.map { $0.wait() }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        let verify = try audit(["verify"], in: dir.path)
        #expect(verify.stdout.contains(#""events":4006"#), "\(verify.stdout) \(verify.stderr)")
        let bulk5 = try audit(["events", "--stream", "bulk-5"], in: dir.path).stdout.split(separator: "\n")
        #expect(bulk5.count == 80)
    }
}

@Suite("Crashes")
struct CrashTests {
    @Test("kill -9 in the middle of a large ingest leaves the log exactly as it was")
    func killedIngest() throws {
        let dir = TempDir()
        try audit(["init"], in: dir.path)
        try audit(["append", "--stream", "before", "--type", "T", "--data", "{}"], in: dir.path)
        let file = dir.path + "/large.jsonl"
        let line = { (i: Int) in #"{"stream":"s-\#(i % 5000)","type":"T","data":{"i":\#(i),"pad":"\#(String(repeating: "x", count: 200))"}}"# }
        _ = FileManager.default.createFile(atPath: file, contents: Data((0..<300_000).map(line).joined(separator: "\n").utf8))
        let ingest = try RunningCommand(["ingest", "--generate-ids", file], in: dir.path)
        // Wait until the ingest is writing (its WAL grows), then kill it.
        let wal = dir.path + "/audit.db-wal"
        let deadline = Date().addingTimeInterval(30)
        var size = 0
        while Date() < deadline, ingest.process.isRunning {
            size = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
            if size > 4 << 20 { break }
            usleep(20_000)
        }
        #expect(ingest.process.isRunning, "the ingest finished before it could be killed; make the file larger")
        kill(ingest.process.processIdentifier, SIGKILL)
        _ = ingest.wait()
        let verify = try audit(["verify"], in: dir.path)
        #expect(verify.status == 0)
        #expect(verify.stdout.contains(#""events":1,"#), "\(verify.stdout)")
        // And the store takes writes again.
        #expect(try audit(["append", "--stream", "after", "--type", "T", "--data", "{}"], in: dir.path).stdout.contains(#""seq":2,"#))
    }
}
