import ArgumentParser
import AuditEngine
import Foundation
import Logging

/// The `audit` command tree. Each subcommand lives in its own file and only parses
/// arguments and calls the engine.
public struct AuditCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "An embedded, scriptable audit and analytics engine over an append-only event log.",
        discussion: """
            The database is --db, else $AUDIT_DB, else ./audit.db.

            Exit codes: 0 success, 1 failure, 3 concurrency conflict, 4 integrity check failed, \
            64 usage error, 65 invalid input.
            """,
        version: AuditVersion.current,
        subcommands: [
            Init.self, Append.self, Ingest.self, Events.self, Verify.self, Projections.self, Replay.self, State.self,
            Query.self, Report.self, Snapshot.self, Explain.self, Test.self, Export.self, VerifyExport.self, Keygen.self, Schedule.self,
            DeadLetters.self,
        ]
    )

    @OptionGroup public var global: GlobalOptions

    public init() {}

    /// Runs the command line and exits with the contract's exit codes.
    ///
    /// Output that cannot be written fails the command (exit 1), except when stdout's
    /// reader went away (EPIPE), which ends it quietly; a failing stderr never changes
    /// the exit code.
    public static func runAndExit() -> Never {
        // EPIPE instead of death by SIGPIPE, so that a closed pipe ends the command
        // through the path below.
        signal(SIGPIPE, SIG_IGN)
        StandardStreams.occupyClosedDescriptors()
        LoggingSystem.bootstrap { _ in StderrLogHandler() }
        if let problem = ArgumentText.firstProblem(CommandLine.arguments.count, CommandLine.unsafeArgv) {
            StandardStreams.writeError("audit: \(problem.message)\n")
            Foundation.exit(problem.isEventContent ? 65 : 64)
        }
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(NegativeValues.join(Array(CommandLine.arguments.dropFirst())))
        } catch {
            exitWithParserMessage(for: error)
        }
        do {
            try command.run()
            Foundation.exit(0)
        } catch is OutputClosed {
            Foundation.exit(ExitCodes.outputClosed)
        } catch let failure as any AuditFailure {
            StandardStreams.writeError("audit: \(failure)\n")
            Foundation.exit(ExitCodes.code(for: failure.category))
        } catch let usage as UsageError {
            StandardStreams.writeError("audit: \(usage)\n")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch let error where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // ValidationError, ExitCode, CleanExit, and the help command's own errors.
            exitWithParserMessage(for: error)
        } catch {
            // An error of no engine type (Foundation's, GRDB's…): in words, exit 1.
            StandardStreams.writeError("audit: \(ErrorText.describe(error))\n")
            Foundation.exit(1)
        }
    }

    /// Usage errors, --help, --version and ExitCode: ArgumentParser's message and
    /// code, written here so that a failing stdout is reported as well.
    private static func exitWithParserMessage(for parserError: any Error) -> Never {
        let code = exitCode(for: parserError)
        let columns = HelpLayout.width()
        let message = HelpLayout.wrapUsage(fullMessage(for: parserError, columns: columns), columns: columns)
        if !message.isEmpty {
            if code == .success {
                do {
                    try StandardStreams.writeOut(message + "\n")
                } catch is OutputClosed {
                    Foundation.exit(ExitCodes.outputClosed)
                } catch let failure {
                    StandardStreams.writeError("audit: \(ErrorText.describe(failure))\n")
                    Foundation.exit(1)
                }
            } else {
                StandardStreams.writeError(message + "\n")
            }
        }
        Foundation.exit(code.rawValue)
    }
}

/// Options every command takes.
public struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The database file (default: $AUDIT_DB, else ./audit.db).", valueName: "path"))
    public var db: String?

    @Flag(name: .long, help: "Open the database read-only: nothing is written to it; reads that need catching up fold into a scratch database.")
    public var readOnly = false

    public init() {}

    /// The database path the options and environment select.
    public var databasePath: String {
        db ?? ProcessInfo.processInfo.environment["AUDIT_DB"] ?? "audit.db"
    }
}

/// The exit codes of CONTRACT §2.
public enum ExitCodes {
    public static func code(for category: FailureCategory) -> Int32 {
        switch category {
        case .invalidInput: return 65
        case .conflict: return 3
        case .integrity: return 4
        case .failure: return 1
        }
    }

    /// Stdout's reader went away: the status a shell gives a process that SIGPIPE ended,
    /// as `cat` or `grep` would end, so that `set -o pipefail` scripts see the same.
    public static let outputClosed: Int32 = 128 + SIGPIPE
}

/// The engine's version, printed by `audit --version` and written into exports.
public enum AuditVersion {
    public static let current = EngineVersion.current
}

/// Where command output goes: stdout carries only results, so it can be piped.
///
/// Buffered; `line` and `flush` throw `OutputFailure` when stdout cannot be written
/// and `OutputClosed` when its reader went away, so a command never claims success
/// for output that was lost.
struct Output {
    private var buffer: [UInt8] = []

    init() {
        buffer.reserveCapacity(1 << 16)
    }

    mutating func line(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { try flush() }
    }

    /// Appends a line that `write` puts into the buffer.
    mutating func line(_ write: (inout [UInt8]) -> Void) throws {
        write(&buffer)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        try buffer.withUnsafeBytes { try StandardStreams.writeOut($0) }
    }
}

/// Opens the store named by the global options, or fails with what to do. Commands
/// that only read open it `.readOnly`: they write nothing, not even beside it.
func openStore(_ global: GlobalOptions, access: EventStore.Access = .readWrite) throws -> EventStore {
    if global.readOnly, access == .readWrite {
        throw ValidationError("--read-only is for reads (query, state, explain); this command writes to the database")
    }
    return try EventStore(path: global.databasePath, access: access)
}

/// Opens the store for a read that catches up: read-only. When a projection it reads
/// lags, the catch-up opens the database for writing if this process may write it
/// (not with --read-only, nor on read-only media or another user's file), else folds
/// the lag into a scratch database (DECISIONS 2, 14).
func openStoreForReading(_ global: GlobalOptions) throws -> EventStore {
    try EventStore(path: global.databasePath, access: .readOnly)
}

/// Prints the engine's warnings on stderr as `audit: warning: …`.
struct StderrLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        StandardStreams.writeError("audit: \(event.level): \(event.message)\n")
    }
}
