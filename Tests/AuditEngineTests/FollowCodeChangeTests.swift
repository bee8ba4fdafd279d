import Foundation
import Testing

@testable import AuditEngine

/// Polls `condition` every 10 ms for at most `seconds`; whether it became true.
func waitUntil(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// A projection's file changes while a `ProjectionFollower` runs: the live table goes
/// on with the code of its build while the new code is built beside it and swapped in.
@Suite("Following: a projection's code changes")
struct FollowCodeChangeTests {
    /// Counts each stream's events and sums their `i`, times `factor` (the code's version).
    /// - Parameter slow: each event also spins a loop (the same states, a build some
    ///   ten times as long), so that a test sees the live table current during a build,
    ///   or stops one midway, however fast the machine.
    static func counts(factor: Int, failAt: Int? = nil, slow: Bool = false) -> String {
        let fail = (failAt.map { "if e.data.i == \($0) then error('no ' .. e.data.i) end " } ?? "")
            + (slow ? "for _ = 1, 2000 do end " : "")
        return """
            return {
              version = 1,
              init = function() return { n = 0, sum = 0 } end,
              on = { T = function(s, e) \(fail)s.n = s.n + 1; s.sum = s.sum + \(factor) * e.data.i end },
              columns = { n = "integer", sum = "integer" },
            }
            """
    }

    static let total = """
        return { version = 1, key = "global", init = function() return { n = 0 } end, on = { T = function(s) s.n = s.n + 1 end } }
        """

    static func events(_ range: Range<Int>) -> [String] {
        range.map { #"{"stream":"s-\#($0 % 7)","type":"T","data":{"i":\#($0)}}"# }
    }

    /// The states `counts` with `factor` has after `events(0..<count)`, by a clean replay
    /// of a database of their own.
    static func cleanStates(factor: Int, count: Int) throws -> [String] {
        let w = try Workspace()
        w.projection("counts", counts(factor: factor))
        try w.ingest(events(0..<count))
        try w.replay(["counts"])
        return try w.dump("counts")
    }

    /// A workspace with `counts` (factor 1) and, with `total`, `total`, replayed over
    /// `events(0..<events)`.
    static func replayed(events count: Int, total: Bool) throws -> Workspace {
        let w = try Workspace()
        w.projection("counts", counts(factor: 1))
        if total { w.projection("total", Self.total) }
        try w.ingest(events(0..<count))
        try w.replay(total ? ["counts", "total"] : ["counts"])
        return w
    }

    /// A follower of the workspace's folder, which builds in small slices.
    static func follower(_ w: Workspace, _ names: [String], newFiles: FollowOptions.NewFiles = .ignore) throws -> ProjectionFollower {
        var options = FollowOptions()
        options.newFiles = newFiles
        options.folder = w.projectionsDir
        options.codeCheckInterval = .milliseconds(20)
        options.buildSlice = 0.02
        options.replay.batchSize = 500
        return ProjectionFollower(store: w.store, projections: try names.map { try w.load($0) }, options: options)
    }

    static func status(_ follower: ProjectionFollower, _ name: String = "counts") -> FollowStatus? {
        follower.status.first { $0.projection == name }
    }

    static func record(_ w: Workspace, _ name: String, build: Bool = false) throws -> ProjectionRecord? {
        try w.store.readTransaction { db in try ReadModel.record(db, name: name, build: build) }
    }

    @Test("the live table is folded with its old code and stays at the head while the new code builds; the swap equals a clean replay of the new code")
    func swapsWhenCaughtUp() throws {
        let w = try Self.replayed(events: 20_000, total: true)
        let oldHash = try #require(try Self.record(w, "counts")?.codeHash)
        let follower = try Self.follower(w, ["counts", "total"])
        try follower.start()
        defer { follower.stop() }
        w.projection("counts", Self.counts(factor: 2, slow: true))
        let writer = try EventStore(path: w.store.path)
        var appended = 20_000
        // While it builds, each append reaches the live table, folded with the old code.
        var currentWhileBuilding = 0
        #expect(waitUntil(seconds: 30) { Self.status(follower)?.build?.state == .building }, "\(follower.status)")
        while Self.status(follower)?.build != nil, appended < 22_000 {
            try writer.ingest(path: w.dir.jsonl("more-\(appended).jsonl", Self.events(appended..<appended + 20)), missingIds: .generate)
            appended += 20
            let head = try w.store.head().seq
            guard waitUntil(seconds: 10, { (try? Self.record(w, "counts")?.position ?? 0) ?? 0 >= head }) else { break }
            let live = try #require(try Self.record(w, "counts"))
            if live.codeHash == oldHash, Self.status(follower)?.build?.state == .building {
                currentWhileBuilding += 1
                #expect(try w.dump("counts") == (Self.expectedStates(factor: 1, count: appended)))
                #expect(Self.status(follower)?.state == .following)
            }
        }
        #expect(currentWhileBuilding >= 3, "the build finished before the live table was seen current during it")
        // Swapped in at the head, recorded, and followed on with the new code.
        #expect(waitUntil(seconds: 60) { Self.status(follower)?.build == nil })
        try writer.ingest(path: w.dir.jsonl("last.jsonl", Self.events(appended..<appended + 10)), missingIds: .generate)
        appended += 10
        let head = try w.store.head().seq
        #expect(waitUntil(seconds: 30) { (try? Self.record(w, "counts")?.position) == head && Self.status(follower, "total")?.position == head })
        let live = try #require(try Self.record(w, "counts"))
        #expect(live.codeHash == (try w.load("counts").codeHash))
        #expect(try Self.record(w, "counts", build: true) == nil)
        #expect(try w.store.events(EventFilter(stream: "audit-code-counts", type: "CodeBuilt")).count == 2)
        // The build's own figures, for audit projections: from seq 0 to where it was promoted.
        let stats = try #require(try w.store.replayStats()["counts"])
        #expect(stats.fromSeq == 0 && stats.toSeq >= 20_060 && stats.seconds > 0, "\(stats)")
        #expect(try w.dump("counts") == (try Self.cleanStates(factor: 2, count: appended)))
        #expect(try w.state("total", "global") == #"{"n":\#(appended)}"#)
        follower.stop()
        let outcomes = try follower.wait()
        #expect(outcomes.map(\.projection) == ["counts", "total"])
        #expect(outcomes.first?.status == .rebuilt)
    }

    /// The states `cleanStates` gives, computed: per stream, n and the sum of `i` over
    /// the events with `i % 7 == stream`, times `factor`.
    static func expectedStates(factor: Int, count: Int) -> [String] {
        (0..<7).map { stream in
            let values = stride(from: stream, to: count, by: 7)
            let sum = values.reduce(0, +) * factor
            return #"s-\#(stream) {"n":\#(values.underestimatedCount),"sum":\#(sum)}"#
        }
    }

    @Test("new code that fails (a handler error, then a load error) keeps the live table current with the old code and says so; a fix is built and swapped in")
    func failingCode() throws {
        let w = try Self.replayed(events: 3_000, total: true)
        let follower = try Self.follower(w, ["counts", "total"])
        try follower.start()
        defer { follower.stop() }
        let writer = try EventStore(path: w.store.path)
        var appended = 3_000
        func appendAndWait() throws {
            try writer.ingest(path: w.dir.jsonl("more-\(appended).jsonl", Self.events(appended..<appended + 50)), missingIds: .generate)
            appended += 50
            let head = try w.store.head().seq
            #expect(waitUntil(seconds: 30) {
                (try? Self.record(w, "counts")?.position) == head && Self.status(follower, "total")?.position == head
            })
            #expect(try w.dump("counts") == (Self.expectedStates(factor: 1, count: appended)))
        }
        w.projection("counts", Self.counts(factor: 2, failAt: 1_234))
        #expect(waitUntil(seconds: 30) {
            if case .failed(let error)? = Self.status(follower)?.build?.state { return error.seq != nil }
            return false
        }, "\(follower.status)")
        #expect(Self.status(follower)?.state == .following)
        #expect(try Self.record(w, "counts", build: true)?.status == "failed")
        try appendAndWait()
        // A file that does not load: the same.
        w.projection("counts", "return { on = ")
        #expect(waitUntil(seconds: 30) {
            if case .failed(let error)? = Self.status(follower)?.build?.state { return error.seq == nil }
            return false
        }, "\(follower.status)")
        try appendAndWait()
        // Fixed: built, swapped in.
        w.projection("counts", Self.counts(factor: 3))
        #expect(waitUntil(seconds: 60) { Self.status(follower)?.build == nil && (try? Self.record(w, "counts")?.codeHash) == (try? w.load("counts").codeHash) })
        let head = try w.store.head().seq
        #expect(waitUntil(seconds: 30) { (try? Self.record(w, "counts")?.position) == head })
        #expect(try w.dump("counts") == (Self.expectedStates(factor: 3, count: appended)))
    }

    @Test("a second change during a build restarts it with the newest code; touching a file without changing it builds nothing")
    func secondChange() throws {
        let w = try Self.replayed(events: 20_000, total: false)
        let follower = try Self.follower(w, ["counts"])
        try follower.start()
        defer { follower.stop() }
        // The same text rewritten: its mtime moves, its hash does not.
        w.projection("counts", Self.counts(factor: 1))
        usleep(200_000)
        #expect(Self.status(follower)?.build == nil)
        #expect(try Self.record(w, "counts", build: true) == nil)
        w.projection("counts", Self.counts(factor: 2))
        #expect(waitUntil(seconds: 30) { (Self.status(follower)?.build?.position ?? 0) > 0 })
        w.projection("counts", Self.counts(factor: 5))
        let newest = try w.load("counts").codeHash
        #expect(waitUntil(seconds: 30) { Self.status(follower)?.build?.codeHash == newest })
        #expect(waitUntil(seconds: 60) { (try? Self.record(w, "counts")?.codeHash) == newest })
        #expect(try w.dump("counts") == (Self.expectedStates(factor: 5, count: 20_000)))
        #expect(try w.store.events(EventFilter(stream: "audit-code-counts", type: "CodeBuilt")).count == 2)
        // The last build's own figures (the restarted one), from seq 0 to where it was promoted.
        let stats = try #require(try w.store.replayStats()["counts"])
        #expect(stats.fromSeq == 0 && stats.toSeq >= 20_000 && stats.seconds > 0, "\(stats)")
    }

    @Test("stopped mid-build, the next follower resumes the build from its checkpoint and the live table from its own, with the old code")
    func resumesBoth() throws {
        let w = try Self.replayed(events: 30_000, total: false)
        let oldHash = try Self.record(w, "counts")?.codeHash
        let first = try Self.follower(w, ["counts"])
        try first.start()
        w.projection("counts", Self.counts(factor: 2, slow: true))
        #expect(waitUntil(seconds: 30) { (try? Self.record(w, "counts", build: true)?.position ?? 0) ?? 0 > 2_000 })
        first.stop()
        _ = try first.wait()
        let build = try #require(try Self.record(w, "counts", build: true))
        #expect(build.position < 30_000, "the build finished before the stop")
        let started = try w.store.readTransaction { db in
            try String.fetchOne(db, sql: "SELECT started_at FROM projection_builds WHERE name = 'counts'")
        }
        // Appended while no follower runs: the live table folds them with the old code.
        try w.ingest(Self.events(30_000..<30_100))
        let second = try Self.follower(w, ["counts"])
        try second.start()
        defer { second.stop() }
        let head = try w.store.head().seq
        #expect(waitUntil(seconds: 30) { (try? Self.record(w, "counts")?.position) == head })
        if try Self.record(w, "counts", build: true) != nil {
            // Still building: the live table is current, with the old code, and the build
            // was not started again.
            #expect(try Self.record(w, "counts")?.codeHash == oldHash)
            #expect(try w.store.readTransaction { db in
                try String.fetchOne(db, sql: "SELECT started_at FROM projection_builds WHERE name = 'counts'")
            } == started)
        }
        #expect(waitUntil(seconds: 60) { Self.status(second)?.build == nil })
        #expect(try w.dump("counts") == (Self.expectedStates(factor: 2, count: 30_100)))
        second.stop()
        let outcome = try #require(try second.wait().first)
        #expect(outcome.status == .rebuilt)
        // The build folded only what its checkpoint had not: the events after it.
        #expect(outcome.eventsApplied == 30_100 - Int(build.position), "resumed from seq \(build.position)")
    }

    @Test("a removed file keeps its live table folded with the code of its build; a new file is built only with newFiles .build", arguments: [false, true])
    func removedAndNewFiles(add: Bool) throws {
        let w = try Self.replayed(events: 1_000, total: false)
        let follower = try Self.follower(w, ["counts"], newFiles: add ? .build : .tell)
        try follower.start()
        defer { follower.stop() }
        try FileManager.default.removeItem(atPath: w.projectionsDir + "/counts.lua")
        w.projection("extra", Self.total)
        usleep(100_000)
        try EventStore(path: w.store.path).ingest(path: w.dir.jsonl("more.jsonl", Self.events(1_000..<1_100)), missingIds: .generate)
        let head = try w.store.head().seq
        #expect(waitUntil(seconds: 30) { (try? Self.record(w, "counts")?.position) == head })
        #expect(try w.dump("counts") == Self.expectedStates(factor: 1, count: 1_100))
        #expect(Self.status(follower)?.build == nil && Self.status(follower)?.state == .following)
        if add {
            #expect(waitUntil(seconds: 30) { (try? w.state("extra", "global")) == #"{"n":1100}"# }, "\(follower.status)")
            #expect(Self.status(follower, "extra")?.state == .following)
        } else {
            usleep(200_000)
            #expect(try Self.record(w, "extra") == nil && Self.record(w, "extra", build: true) == nil)
            #expect(Self.status(follower, "extra") == nil)
        }
    }
}
