import ArgumentParser
import AuditEngine

/// The VM limits given on the command line. Each one given replaces that limit only:
/// the others stay each projection's own (those its `limits` declares, else the
/// defaults). Every command that takes limit options takes these.
struct LimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Memory limit of each projection's VM, in MB (overrides the projections' own).", valueName: "mb")) var memoryMb: Int?
    @Option(help: ArgumentHelp("Lua instructions allowed per event (overrides the projections' own).", valueName: "n")) var instructions: Int64?
    @Option(help: ArgumentHelp("CPU seconds allowed per event (overrides the projections' own; default 0.25).", valueName: "s")) var seconds: Double?

    func validate() throws {
        if let memoryMb, memoryMb < 1 || memoryMb > LuaLimits.maxMemoryMB {
            throw ValidationError("--memory-mb must be from 1 to \(LuaLimits.maxMemoryMB)")
        }
        if let instructions, instructions < 1 { throw ValidationError("--instructions must be at least 1") }
        if let seconds, !(seconds > 0 && seconds <= LuaLimits.maxCPUSeconds) {
            throw ValidationError("--seconds must be over 0 and at most \(Int(LuaLimits.maxCPUSeconds))")
        }
    }

    /// The limits given, each to replace only its own; nil when none was given.
    var limits: LuaLimitOverrides? {
        let given = LuaLimitOverrides(memoryBytes: memoryMb.map { $0 << 20 }, instructionsPerEvent: instructions, cpuSecondsPerEvent: seconds)
        return given.isEmpty ? nil : given
    }

    /// Whether any limit option was given.
    var isEmpty: Bool { limits == nil }
}
