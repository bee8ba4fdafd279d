import CLuaSandbox
import Foundation

/// Limits of one projection's VM.
public struct LuaLimits: Sendable, Equatable {
    /// Bytes the VM may hold: the script's data and the states kept in memory between
    /// checkpoints. Past half of it, states are written out and dropped after each
    /// checkpoint (and read back when their key comes up again).
    public var memoryBytes: Int
    /// Lua instructions per event (key function, init and handler together); the C
    /// functions of the libraries charge their work to it too (docs/projections.md).
    public var instructionsPerEvent: Int64
    /// CPU time per event, of the thread folding it: a backstop for work the budget
    /// cannot count. A failure at this limit is machine-dependent.
    public var cpuSecondsPerEvent: Double

    public static let defaultCPUSeconds = 0.25
    public static let `default` = LuaLimits(memoryBytes: 512 << 20, instructionsPerEvent: 1_000_000)
    /// The largest memory limit a projection or an option may ask for.
    public static let maxMemoryMB = 65536
    /// The largest CPU time limit.
    public static let maxCPUSeconds = 3600.0
    /// The longest string a projection may make (fixed: it bounds the work of one `==`
    /// or `..`, which the VM does in one instruction).
    public static let maxStringBytes = Int(avm_max_string())

    public init(memoryBytes: Int, instructionsPerEvent: Int64, cpuSecondsPerEvent: Double = LuaLimits.defaultCPUSeconds) {
        self.memoryBytes = memoryBytes
        self.instructionsPerEvent = instructionsPerEvent
        self.cpuSecondsPerEvent = cpuSecondsPerEvent
    }
}

/// Limits given for one run (the command line's `--memory-mb`, `--instructions`,
/// `--seconds`): each one given replaces that limit only; the others stay each
/// projection's own — those its `limits` table declares, else the defaults.
public struct LuaLimitOverrides: Sendable, Equatable {
    public var memoryBytes: Int?
    public var instructionsPerEvent: Int64?
    public var cpuSecondsPerEvent: Double?

    public init(memoryBytes: Int? = nil, instructionsPerEvent: Int64? = nil, cpuSecondsPerEvent: Double? = nil) {
        self.memoryBytes = memoryBytes
        self.instructionsPerEvent = instructionsPerEvent
        self.cpuSecondsPerEvent = cpuSecondsPerEvent
    }

    /// Every limit replaced by `limits`' (a library caller that sets them all).
    public init(_ limits: LuaLimits) {
        self.init(memoryBytes: limits.memoryBytes, instructionsPerEvent: limits.instructionsPerEvent, cpuSecondsPerEvent: limits.cpuSecondsPerEvent)
    }

    /// Whether none is given.
    public var isEmpty: Bool { memoryBytes == nil && instructionsPerEvent == nil && cpuSecondsPerEvent == nil }

    /// `limits` with the ones given here replaced: the one place where limits given for
    /// a run meet a projection's own.
    public func applied(to limits: LuaLimits) -> LuaLimits {
        LuaLimits(
            memoryBytes: memoryBytes ?? limits.memoryBytes, instructionsPerEvent: instructionsPerEvent ?? limits.instructionsPerEvent,
            cpuSecondsPerEvent: cpuSecondsPerEvent ?? limits.cpuSecondsPerEvent)
    }
}

extension Optional where Wrapped == LuaLimitOverrides {
    /// The defaults with these overrides: what a projection that declares no limits
    /// runs under (and what its top level is loaded under).
    public var overDefaults: LuaLimits { self?.applied(to: .default) ?? .default }
}

/// The result of folding one event.
enum ApplyResult {
    case applied
    case skipped
    /// The key's state is not in memory; supply it with `provideState` and apply again.
    case needsState(key: String)
}

/// A failure inside the VM, with Lua's message (which names the file and line).
struct LuaError: Error, CustomStringConvertible {
    var message: String
    /// False for the CPU time and memory limits (see `ProjectionError.deterministic`).
    var deterministic = true
    var description: String { message }
}

/// The one owner of a sandboxed `lua_State` (through CLuaSandbox's `avm`).
///
/// Nothing else sees the pointer; it is freed in `deinit`. Not thread-safe: one VM
/// per worker. Every call into Lua runs under `lua_pcall` inside C.
final class LuaVM {
    private let vm: OpaquePointer

    init(limits: LuaLimits) throws {
        guard limits.memoryBytes > 0, limits.memoryBytes <= LuaLimits.maxMemoryMB << 20, limits.instructionsPerEvent > 0,
              limits.cpuSecondsPerEvent > 0, limits.cpuSecondsPerEvent <= LuaLimits.maxCPUSeconds
        else {
            throw LuaError(message: "invalid limits: memory from 1 byte to \(LuaLimits.maxMemoryMB) MB, at least 1 instruction, CPU time over 0 and at most \(Int(LuaLimits.maxCPUSeconds)) s")
        }
        guard let vm = avm_new(limits.memoryBytes, limits.instructionsPerEvent) else {
            throw LuaError(message: "cannot create a Lua VM (out of memory)")
        }
        self.vm = vm
        if avm_set_cpu_limit(vm, limits.cpuSecondsPerEvent) != 0 {
            avm_free(vm)
            throw LuaError(message: "cannot start the thread that limits CPU time")
        }
    }

    deinit {
        // Freeing a VM that holds many states visits every object (a twentieth of a
        // replay of half a million keys, measured): a large one is freed on a background
        // queue, so that a replay returns without waiting for it.
        guard avm_memory_used(vm) >= 16 << 20 else {
            avm_free(vm)
            return
        }
        let doomed = Doomed(vm)
        DispatchQueue.global(qos: .utility).async { doomed.free() }
    }

    /// A VM no one uses any more, handed to the queue that frees it.
    private final class Doomed: @unchecked Sendable {
        let vm: OpaquePointer
        init(_ vm: OpaquePointer) { self.vm = vm }
        func free() { avm_free(vm) }
    }

    var memoryUsed: Int { avm_memory_used(vm) }
    /// Whether the batch fold fetches the states of the events ahead (see avm_prefetches_states).
    var prefetchesStates: Bool { avm_prefetches_states(vm) != 0 }
    /// Whether the state check and the upvalue watch read Lua's internals directly (see
    /// avm_checks_directly).
    var checksDirectly: Bool { avm_checks_directly(vm) != 0 }
    /// Keys this VM started from init: keys new to the projection.
    var keysCreated: Int { avm_keys_created(vm) }
    var memoryLimit: Int { avm_memory_limit(vm) }

    /// The VM's last error.
    private var failure: LuaError {
        LuaError(message: String(cString: avm_error(vm)), deterministic: avm_error_deterministic(vm) != 0)
    }

    private func check(_ status: Int32) throws {
        if status == AVM_ERROR { throw failure }
    }

    /// Makes `require(name)` load `source`.
    func addModule(name: String, source: String, chunkName: String) throws {
        var source = source
        try source.withUTF8 { buffer in
            try check(avm_add_module(vm, name, buffer.baseAddress, buffer.count, "@" + chunkName))
        }
    }

    /// Runs a projection script and keeps the table it returns.
    func load(source: String, chunkName: String) throws {
        var source = source
        try source.withUTF8 { buffer in
            try check(avm_load(vm, buffer.baseAddress, buffer.count, "@" + chunkName))
        }
    }

    /// The loaded spec as canonical JSON, functions shown as "<function>".
    func describe() throws -> String {
        var pointer: UnsafePointer<CChar>?
        var length = 0
        try check(avm_describe(vm, &pointer, &length))
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// Builds only these fields of each event (AVM_FIELD_* bits).
    func setEventFields(_ fields: UInt32) { avm_set_event_fields(vm, fields) }

    /// The projection's declared columns (name, type: text, integer, real or numeric):
    /// writing out a state whose field does not fit its column fails, naming both.
    func setColumns(_ columns: [(name: String, type: String)]) throws {
        guard !columns.isEmpty else { return }
        let types: [Int32] = columns.map {
            switch $0.type {
            case "text": return Int32(AVM_COLUMN_TEXT)
            case "integer": return Int32(AVM_COLUMN_INTEGER)
            case "real": return Int32(AVM_COLUMN_REAL)
            default: return Int32(AVM_COLUMN_NUMERIC)
            }
        }
        let names = columns.map { strdup($0.name) }
        defer { names.forEach { free($0) } }
        let status = names.map { UnsafePointer($0) }.withUnsafeBufferPointer { n in
            types.withUnsafeBufferPointer { t in avm_set_columns(vm, n.baseAddress, t.baseAddress, columns.count) }
        }
        try check(status)
    }

    /// When true, a key not in memory has no stored state and starts from `init`.
    func assumeNoStoredStates(_ flag: Bool) { avm_assume_no_stored_states(vm, flag ? 1 : 0) }

    /// Folds one event whose fields point into a stored row.
    func apply(_ event: inout avm_event) throws -> ApplyResult {
        try result(of: avm_apply(vm, &event))
    }

    /// Folds `batch.events` from `batch.at` on, as `apply` would one by one; returns
    /// `.applied` when all are done, or stops at `batch.at` with `.needsState` (that event
    /// is not applied yet). `batch.applied` and `batch.last_seq` count what was applied.
    func apply(batch: inout avm_batch) throws -> ApplyResult {
        try result(of: avm_apply_batch(vm, &batch))
    }

    private func result(of status: Int32) throws -> ApplyResult {
        switch status {
        case Int32(AVM_OK): return .applied
        case Int32(AVM_SKIPPED): return .skipped
        case Int32(AVM_NEED_STATE):
            var length = 0
            let pointer = avm_pending_key(vm, &length)
            return .needsState(key: String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self))
        default:
            throw failure
        }
    }

    /// The key the last applied event went to.
    var lastKey: String {
        var length = 0
        let pointer = avm_last_key(vm, &length)
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// After a failed apply: the key of the event that failed, or nil when it failed
    /// before its key was known.
    var failedKey: String? {
        var length = 0
        guard let pointer = avm_failed_key(vm, &length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// Parks `key`: its events from `firstSeq` on are dead letters, not folded.
    func park(key: String, firstSeq: Int64) throws {
        var key = key
        let status = key.withUTF8 { avm_park_key(vm, $0.baseAddress, $0.count, firstSeq) }
        if status != AVM_OK { throw LuaError(message: "not enough memory to park key \(key)", deterministic: false) }
    }

    /// Unparks `key`: its events are folded again (a fold that folds it again from an
    /// earlier state, which may park it again).
    func unpark(key: String) {
        var key = key
        key.withUTF8 { avm_unpark_key(vm, $0.baseAddress, $0.count) }
    }

    /// Sets `key`'s state in memory to `json`, written at the next flush; nil drops the
    /// state it has in memory (whatever a failed handler did to it): the next flush
    /// writes nothing for it, and its stored state stays as it was.
    func setState(key: String, json: String?) throws {
        var key = key
        try key.withUTF8 { k in
            if var json {
                try json.withUTF8 { j in try check(avm_set_state(vm, k.baseAddress, k.count, j.baseAddress, j.count)) }
            } else {
                try check(avm_set_state(vm, k.baseAddress, k.count, nil, 0))
            }
        }
    }

    /// Folds only the parked keys' events, each up to its first seq (a retry).
    func foldOnlyParked(_ flag: Bool) { avm_fold_only_parked(vm, flag ? 1 : 0) }

    /// The dead letters recorded since the last call, in seq order.
    func takeDeadLetters() -> [(key: String, seq: Int64)] {
        var length = 0
        let pointer = avm_take_dead_letters(vm, &length)
        guard length > 0 else { return [] }
        let bytes = UnsafeRawBufferPointer(start: pointer, count: length)
        var letters: [(key: String, seq: Int64)] = []
        var at = 0
        func int(_ width: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<width { value |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += width
            return value
        }
        while at < length {
            let keyLength = Int(int(4))
            let key = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<at + keyLength]), as: UTF8.self)
            at += keyLength
            letters.append((key, Int64(bitPattern: int(8))))
        }
        return letters
    }

    /// Supplies a key's stored state (canonical JSON), or nil to start from `init(key)`.
    func provideState(key: String, json: String?) throws {
        var key = key
        try key.withUTF8 { k in
            if var json {
                try json.withUTF8 { j in
                    try check(avm_provide_state(vm, k.baseAddress, k.count, j.baseAddress, j.count))
                }
            } else {
                try check(avm_provide_state(vm, k.baseAddress, k.count, nil, 0))
            }
        }
    }

    /// The states changed since the last flush, serialised as canonical JSON and
    /// forgotten as changed, in key order: per state a UInt32 key length, the key, a
    /// UInt32 JSON length, the JSON, lengths little-endian (read by `StateRecords`). The
    /// records live in the VM until its next call.
    struct FlushedStates {
        let records: UnsafeRawBufferPointer
        let count: Int
    }

    /// Serialises every state changed since the last flush (see `FlushedStates`).
    func flush() throws -> FlushedStates {
        var pointer: UnsafePointer<CChar>?
        var length = 0
        var count = 0
        try check(avm_flush(vm, &pointer, &length, &count))
        return FlushedStates(records: UnsafeRawBufferPointer(start: pointer, count: length), count: count)
    }

    /// After `flush` failed on a state that cannot be stored: the seq of the last event
    /// that changed it, or nil when not known.
    var flushFailedSeq: Int64? {
        let seq = avm_flush_failed_seq(vm)
        return seq > 0 ? seq : nil
    }

    var hasMerge: Bool { avm_has_merge(vm) != 0 }

    /// state[key] = merge(state[key], partial), where partial is canonical JSON.
    func merge(key: String, partial json: String) throws {
        var key = key, json = json
        try key.withUTF8 { k in
            try json.withUTF8 { j in
                try check(avm_merge(vm, k.baseAddress, k.count, j.baseAddress, j.count))
            }
        }
    }

    /// Drops the states held in memory; call only after their flush was committed.
    func evict() throws { try check(avm_evict(vm)) }

    /// The canonical JSON of a key's state in memory, or nil when it is not in memory.
    func stateJSON(key: String) throws -> String? {
        var key = key
        var pointer: UnsafePointer<CChar>?
        var length = 0
        let status = key.withUTF8 { avm_state_json(vm, $0.baseAddress, $0.count, &pointer, &length) }
        if status == AVM_SKIPPED { return nil }
        try check(status)
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }
}
