import ArgumentParser
import AuditEngine
import Foundation

/// How a read brings the projections it reads up to date first (DECISIONS 14).
struct CatchUpArguments: ParsableArguments {
    @Flag(help: "Answer from the tables as they are, saying on stderr how far each is behind.") var noCatchUp = false
    @Option(help: ArgumentHelp("Seconds to wait, at most, for another process's replay to bring the projections read up to date.", valueName: "s"))
    var wait: Double = 30
    @Flag(help: "Exit 65 when the folder's code of a projection read differs from the code that built its table.") var strictCode = false
    @Flag(help: "Answer from a failed projection's last good state (said on stderr) instead of exiting 65.") var staleOk = false

    func validate() throws {
        if !(wait >= 0 && wait <= 86_400) { throw ValidationError("--wait must be from 0 to 86400 seconds") }
    }

    /// The engine's options, comparing code with `workspace`'s projections folder and
    /// saying what the reader should know on stderr. The database is opened for writing
    /// only to fold a lag, and never with --read-only.
    func options(_ workspace: WorkspaceOptions, _ global: GlobalOptions) -> CatchUpOptions {
        var options = CatchUpOptions()
        options.mayOpenForWriting = !global.readOnly
        options.catchUp = !noCatchUp
        options.wait = wait
        options.strictCode = strictCode
        options.staleOK = staleOk
        options.folder = workspace.projections
        options.note = { warn("audit: " + $0) }
        return options
    }
}
