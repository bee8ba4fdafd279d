import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program run in a child process, with its own peak RSS.
///
/// The peak comes from `/usr/bin/time -f %M` (Debian's `time`, which `.ci/run`
/// installs), which forks the program and reports its rusage: the rusage of a child
/// this process spawns itself would not do, since Linux starts a process's peak RSS
/// at that of the process it was spawned from (exec takes over the spawning process's
/// high-water mark) — every child of a test process holding 250 MB reported 250 MB.
/// The child gets a process group of its own, so that the timeout kills the program
/// too, not only `time`.
struct ChildProcess {
    var status: Int32
    /// Killed at the timeout.
    var killed: Bool
    var stdout: String
    var stderr: String
    /// The program's peak RSS, in kilobytes.
    var maxRSSKB: Int

    static let time = "/usr/bin/time"

    static func run(_ executable: String, _ arguments: [String], timeout: Double) throws -> ChildProcess {
        guard FileManager.default.isExecutableFile(atPath: time) else {
            throw CLIFailure("\(time) is needed to measure a child's peak memory: apt-get install time")
        }
        let dir = TempDir()
        let outPath = dir.file("stdout"), errPath = dir.file("stderr"), rssPath = dir.file("rss")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([time, "-f", "%M", "-o", rssPath, executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, time, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw CLIFailure("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var killed = false
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            let reaped = waitpid(pid, &status, killed ? 0 : WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { throw CLIFailure("waitpid: \(String(cString: strerror(errno)))") }
            if reaped == 0 && ContinuousClock.now > deadline {
                kill(-pid, SIGKILL)
                killed = true
            } else if reaped == 0 {
                usleep(10_000)
            }
        }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        // time's report: "Command exited with non-zero status N" when so, then the peak.
        let report = (try? String(contentsOfFile: rssPath, encoding: .utf8)) ?? ""
        let peak = report.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return ChildProcess(
            status: exit, killed: killed,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
            maxRSSKB: peak ?? Int.max)
    }
}
