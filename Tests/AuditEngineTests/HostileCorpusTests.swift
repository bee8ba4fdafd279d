import Foundation
import Testing

@testable import AuditEngine

/// The hostile corpus (Tests/AuditEngineTests/Hostile/*.lua, headers in `HostileCase`):
/// each file is replayed beside a good projection, and must be stopped with its error
/// (or succeed, for `-- expect: ok`) within its bound, leaving the good projection's
/// states exactly as they would be without it.
@Suite("The hostile corpus")
struct HostileCorpusTests {
    @Test("the corpus is there and every header reads")
    func corpusReads() {
        #expect(HostileCase.all.count >= 4, "no corpus at \(HostileCase.directory)")
        for c in HostileCase.all {
            #expect(c.headerProblems.isEmpty, "\(c.name).lua: \(c.headerProblems.joined(separator: "; "))")
        }
    }

    @Test("each case is stopped with its error within its bound; the good projection beside it is untouched", arguments: HostileCase.all)
    func stopped(_ c: HostileCase) throws {
        guard c.headerProblems.isEmpty else { return }  // reported by corpusReads
        // On a thread of its own: a case that hangs is reported, and the others still run.
        let result = ResultSlot<Result<HostileOutcome, any Error>>()
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.value = Result { try HostileOutcome.replay(c) }
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + max(60, c.within * 4)) == .success, let outcome = try result.value?.get() else {
            Issue.record("\(c.name): still running after \(Int(max(60, c.within * 4))) s (a hang)")
            return
        }
        if let expected = c.expected {
            if let failure = outcome.failure {
                #expect(failure.contains(expected), "\(c.name): stopped, but not with \"\(expected)\": \(failure)")
            } else {
                Issue.record("\(c.name): not stopped (\(outcome.hostileStatus)); expected \"\(expected)\"")
            }
        } else {
            #expect(outcome.failure == nil, "\(c.name): must succeed, but: \(outcome.failure ?? "")")
        }
        #expect(outcome.seconds <= c.within, "\(c.name): took \(outcome.seconds) s, over its bound of \(c.within) s")
        #expect(outcome.goodProblems.isEmpty, "\(c.name): the good projection beside it: \(outcome.goodProblems.joined(separator: "; "))")
    }

    @Test("a case marked rss-mb keeps the peak RSS of a child process running it under its bound", arguments: HostileCase.all.filter { $0.rssMB != nil })
    func rssBounded(_ c: HostileCase) throws {
        guard c.headerProblems.isEmpty, let rssMB = c.rssMB else { return }
        let dir = TempDir()
        let projections = dir.file("projections")
        try FileManager.default.createDirectory(atPath: projections, withIntermediateDirectories: true)
        try c.source.write(toFile: projections + "/hostile.lua", atomically: true, encoding: .utf8)
        try HostileCase.good.write(toFile: projections + "/good.lua", atomically: true, encoding: .utf8)
        let store = try dir.store()
        if c.events > 0 { try store.ingest(path: dir.jsonl("events.jsonl", (1...c.events).map(HostileCase.event))) }
        let run = try ChildProcess.run(
            auditExecutable, ["replay", "--db", dir.file("audit.db"), "--projections", projections] + c.commandLineLimits + ["hostile", "good"],
            timeout: max(60, c.within * 4))
        #expect(!run.killed, "\(c.name): killed after its timeout (a hang)")
        #expect(run.maxRSSKB < rssMB << 10, "\(c.name): peak RSS \(run.maxRSSKB >> 10) MB, over its bound of \(rssMB) MB")
        if let expected = c.expected {
            #expect(run.status == 65 && run.stderr.contains(expected), "\(c.name): exit \(run.status), stderr: \(run.stderr)")
        } else {
            #expect(run.status == 0, "\(c.name): exit \(run.status), stderr: \(run.stderr)")
        }
        #expect(run.stdout.contains(#"{"projection":"good","status":"rebuilt""#), "\(c.name): \(run.stdout)")
    }
}

/// What replaying one case did.
struct HostileOutcome: Sendable {
    /// The hostile projection's error (loading or replaying it); nil when it succeeded.
    var failure: String?
    var hostileStatus: String
    /// How the good projection's states differ from what its events give.
    var goodProblems: [String]
    /// Wall time of loading and replaying both.
    var seconds: Double

    static func replay(_ c: HostileCase) throws -> HostileOutcome {
        let w = try Workspace()
        w.projection("hostile", c.source)
        w.projection("good", HostileCase.good)
        if c.events > 0 { try w.ingest((1...c.events).map(HostileCase.event)) }
        let limits = c.limits ?? .default
        var options = ReplayOptions()
        if !c.limitArguments.isEmpty { options.limits = LuaLimitOverrides(limits) }
        let start = ContinuousClock.now
        var projections = [try w.load("good")]
        var failure: String?
        var status = "did not load"
        do {
            projections.insert(try w.load("hostile", limits: limits), at: 0)
        } catch {
            failure = "\(error)"
        }
        let outcomes = try w.store.replay(projections, options: options)
        let elapsed = (ContinuousClock.now - start).components
        var goodProblems: [String] = []
        for outcome in outcomes {
            if outcome.projection == "hostile" {
                status = "\(outcome.status)"
                if case .failed(let error) = outcome.status { failure = error.description }
            } else if outcome.status != .rebuilt {
                goodProblems.append("status \(outcome.status)")
            }
        }
        let expected = HostileCase.goodStates(events: c.events)
        let stored = Dictionary(try w.dump("good").map { line in
            let space = line.firstIndex(of: " ")!
            return (String(line[..<space]), String(line[line.index(after: space)...]))
        }, uniquingKeysWith: { a, _ in a })
        if stored != expected { goodProblems.append("states \(stored), expected \(expected)") }
        return HostileOutcome(
            failure: failure, hostileStatus: status, goodProblems: goodProblems,
            seconds: Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
    }
}

/// A value handed from one thread to another. `@unchecked Sendable`: it is written once,
/// by the worker before it signals the semaphore, and read only after that signal was
/// received (the semaphore orders the write before the read).
final class ResultSlot<Value>: @unchecked Sendable {
    var value: Value?
}

/// The `audit` executable built beside this test bundle (`swift build` builds it with the tests).
let auditExecutable: String = {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
    return dir.appendingPathComponent("audit").path
}()
