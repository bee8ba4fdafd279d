import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program run in a child process, with its peak RSS: spawned with posix_spawn and
/// reaped with wait4, whose rusage is that one child's (getrusage(RUSAGE_CHILDREN)
/// would give the largest of every child this process ever waited for).
struct ChildProcess {
    var status: Int32
    /// Killed at the timeout.
    var killed: Bool
    var stdout: String
    var stderr: String
    /// ru_maxrss: kilobytes on Linux.
    var maxRSSKB: Int

    static func run(_ executable: String, _ arguments: [String], timeout: Double) throws -> ChildProcess {
        let dir = TempDir()
        let outPath = dir.file("stdout"), errPath = dir.file("stderr")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw CLIFailure("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        var killed = false
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            let reaped = wait4(pid, &status, killed ? 0 : WNOHANG, &usage)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { throw CLIFailure("wait4: \(String(cString: strerror(errno)))") }
            if reaped == 0 && ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                killed = true
            } else if reaped == 0 {
                usleep(10_000)
            }
        }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ChildProcess(
            status: exit, killed: killed,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
            maxRSSKB: usage.ru_maxrss)
    }
}
