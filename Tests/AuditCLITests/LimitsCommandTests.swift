import Foundation
import Testing

/// Scripts that would run for ever stop every command that loads them, and limit options
/// out of range are usage errors.
@Suite("Limits from the command line")
struct LimitsCommandTests {
    /// xpcall's message handler used to run with the count hook off: an endless loop.
    static let xpcallLoop = "xpcall(function() while true do end end, function() while true do end end)"

    /// Runs `audit ARGUMENTS`, killed after `seconds`; nil when it had to be killed.
    func audit(_ arguments: [String], in directory: String, within seconds: Double = 30) throws -> CommandResult? {
        let command = try RunningCommand(arguments, in: directory)
        let deadline = Date().addingTimeInterval(seconds)
        while command.process.isRunning && Date() < deadline { usleep(20_000) }
        guard !command.process.isRunning else {
            command.process.terminate()
            _ = command.wait()
            return nil
        }
        return command.wait()
    }

    func workspace(_ projections: [String: String]) throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        for (name, source) in projections {
            try source.write(toFile: dir.path + "/projections/\(name).lua", atomically: true, encoding: .utf8)
        }
        return dir
    }

    @Test("audit test stops a handler whose xpcall handler loops, as replay does")
    func testCommandStops() throws {
        let dir = try workspace(["hang": "return { on = { T = function(s, e) \(Self.xpcallLoop) end } }"])
        try """
            case it is stopped
            {"stream":"a","type":"T"}
            expect error "instruction budget"
            """.write(toFile: dir.path + "/projections/hang.test", atomically: true, encoding: .utf8)
        let result = try #require(try audit(["test"], in: dir.path), "audit test did not finish")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("1 passed"), "\(result.stdout)")
    }

    @Test("the same loop at a script's top level stops projections, replay of another projection, and test")
    func topLevelStops() throws {
        let dir = try workspace([
            "top": "\(Self.xpcallLoop) return { on = { T = function(s, e) end } }",
            "ok": "return { on = { T = function(s, e) s.n = (s.n or 0) + 1 end } }",
        ])
        try #"{"id":"a-1","stream":"a","type":"T","data":{}}"#.write(toFile: dir.path + "/e.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path)?.status == 0)
        #expect(try audit(["ingest", "e.jsonl"], in: dir.path)?.status == 0)
        let listed = try #require(try audit(["projections"], in: dir.path), "audit projections did not finish")
        #expect(listed.stdout.contains("instruction budget") || listed.stderr.contains("instruction budget"), "\(listed.stdout)\(listed.stderr)")
        let replayed = try #require(try audit(["replay", "ok"], in: dir.path), "audit replay ok did not finish")
        #expect(replayed.status == 0 && replayed.stdout.contains(#""projection":"ok","status":"rebuilt""#), "\(replayed.stdout)\(replayed.stderr)")
        // The first replay registered only ok: top is built when added.
        let all = try #require(try audit(["replay", "--add"], in: dir.path), "audit replay did not finish")
        #expect(all.status == 65 && all.stderr.contains("projections/top.lua") && all.stderr.contains("instruction budget"), "\(all.stderr)")
    }

    @Test("limit options out of range are usage errors, never a limit that wraps around")
    func optionRanges() throws {
        let dir = try workspace(["ok": "return { on = { T = function(s, e) end } }"])
        #expect(try audit(["init"], in: dir.path)?.status == 0)
        for options in [
            ["--memory-mb", "10000000000000"], ["--memory-mb", "9223372036854775807"], ["--memory-mb", "65537"], ["--memory-mb", "0"],
            ["--seconds", "0"], ["--seconds", "-1"], ["--seconds", "3601"], ["--seconds", "nan"], ["--instructions", "0"],
        ] {
            let result = try #require(try audit(["replay"] + options, in: dir.path))
            #expect(result.status == 64 && result.stderr.contains(options[0]), "\(options): \(result.status) \(result.stderr)")
        }
        let fine = try #require(try audit(["replay", "--memory-mb", "65536", "--seconds", "0.5", "--instructions", "5"], in: dir.path))
        #expect(fine.status == 0, "\(fine.stderr)")
    }

    @Test("--seconds limits each event's CPU time, and the error says it depends on the machine")
    func secondsOption() throws {
        let dir = try workspace([
            "slow": """
                return { on = { T = function(s, e)
                  local a, b = ("x"):rep(1e7), ("x"):rep(1e7)
                  for i = 1, 200000 do local _ = a == b end
                end } }
                """
        ])
        try #"{"id":"a-1","stream":"a","type":"T","data":{}}"#.write(toFile: dir.path + "/e.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path)?.status == 0)
        #expect(try audit(["ingest", "e.jsonl"], in: dir.path)?.status == 0)
        let result = try #require(try audit(["replay", "--instructions", "100000000", "--seconds", "0.3"], in: dir.path))
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains(#"failed at seq 1: handler "T""#) && result.stderr.contains("CPU time limit of 0.3 s per event exceeded (") && result.stderr.contains("machine-dependent"), "\(result.stderr)")
    }

    /// A projection that declares more instructions than the default (1,000,000) and
    /// needs about five million for its event, with one event of type T.
    func declaringWorkspace(_ extra: String = "key = 'global',") throws -> TempDir {
        let dir = try workspace([
            "L": """
                return { \(extra) limits = { instructions = 1e8, memory_mb = 64, seconds = 5 },
                  on = { T = function(s, e) local n = 0 for i = 1, 1000000 do n = n + i % 7 end s.n = n end } }
                """
        ])
        try #"{"id":"a-1","stream":"a","type":"T","data":{}}"#.write(toFile: dir.path + "/e.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path)?.status == 0)
        #expect(try audit(["ingest", "e.jsonl"], in: dir.path)?.status == 0)
        return dir
    }

    @Test("one limit option replaces only its own limit: replay and verify --projections keep the projection's other declared limits")
    func oneOptionKeepsTheOthers() throws {
        let dir = try declaringWorkspace()
        let plain = try #require(try audit(["replay"], in: dir.path))
        #expect(plain.status == 0, "\(plain.stderr)")
        for options in [["--seconds", "5"], ["--memory-mb", "64"], ["--memory-mb", "2048"]] {
            let rebuilt = try #require(try audit(["replay", "--rebuild"] + options, in: dir.path))
            #expect(rebuilt.status == 0 && rebuilt.stdout.contains(#""status":"rebuilt""#), "replay --rebuild \(options): \(rebuilt.stderr)")
            let checked = try #require(try audit(["verify", "--projections", "L"] + options, in: dir.path))
            #expect(checked.status == 0 && checked.stdout.contains(#""status":"ok""#), "verify --projections L \(options): \(checked.stdout)\(checked.stderr)")
        }
        // The option given still replaces its own limit.
        let lowered = try #require(try audit(["replay", "--rebuild", "--instructions", "1000"], in: dir.path))
        #expect(lowered.status == 65 && lowered.stderr.contains("instruction budget of 1000 instructions exceeded"), "\(lowered.stderr)")
    }

    @Test("a declared memory limit stays when only --instructions is given")
    func declaredMemoryStays() throws {
        let dir = try workspace([
            "M": "return { key = 'global', limits = { memory_mb = 1 }, on = { T = function(s, e) s.n = #string.rep('x', 4000000) end } }"
        ])
        try #"{"id":"a-1","stream":"a","type":"T","data":{}}"#.write(toFile: dir.path + "/e.jsonl", atomically: true, encoding: .utf8)
        #expect(try audit(["init"], in: dir.path)?.status == 0)
        #expect(try audit(["ingest", "e.jsonl"], in: dir.path)?.status == 0)
        let result = try #require(try audit(["replay", "--instructions", "100000000"], in: dir.path))
        #expect(result.status == 65 && result.stderr.contains("memory"), "\(result.stdout)\(result.stderr)")
    }

    @Test("dead-letters retry with one limit option keeps the projection's other declared limits")
    func retryKeepsTheOthers() throws {
        let dir = try declaringWorkspace("on_error = 'park',")
        // Parked under a lowered budget, then retried with only --seconds given: the
        // declared 1e8 instructions fold it.
        let parked = try #require(try audit(["replay", "--instructions", "1000"], in: dir.path))
        #expect(parked.status == 0, "\(parked.stderr)")
        let listed = try #require(try audit(["dead-letters", "L", "--format", "jsonl"], in: dir.path))
        #expect(listed.stdout.contains("instruction budget"), "\(listed.stdout)\(listed.stderr)")
        let retried = try #require(try audit(["dead-letters", "retry", "L", "--seconds", "5"], in: dir.path))
        #expect(retried.status == 0 && retried.stdout.contains(#""status":"unparked""#), "\(retried.stdout)\(retried.stderr)")
    }
}
