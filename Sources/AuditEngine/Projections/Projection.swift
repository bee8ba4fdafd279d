import Foundation

/// A projection loaded from `projections/NAME.lua`: its spec, read from the table the
/// script returns, and everything needed to make VMs for it.
public struct Projection: Sendable {
    public enum KeyMode: String, Sendable {
        case stream, global, function
    }

    /// What a deterministic handler failure does (`on_error`): stop the projection, or
    /// park the failing key and go on with the others (`ParkedKeys`).
    public enum OnError: String, Sendable {
        case stop, park
    }

    /// A column of the projection's SQL table, filled from the state field of its name.
    public struct Column: Sendable, Equatable {
        public var name: String
        /// text, integer, real or numeric.
        public var type: String
    }

    /// The file's name without `.lua`; also its SQL table's name.
    public let name: String
    /// The script's path as given to the loader (used in error messages).
    public let file: String
    public let version: Int64
    /// SHA-256 (hex) over the script and every module in projections/lib: any change
    /// to the code makes the next replay rebuild (`ProjectionCode.hash`).
    public let codeHash: String
    public let streams: String?
    public let key: KeyMode
    /// The event types it handles, sorted.
    public let handledTypes: [String]
    public let columns: [Column]
    public let limits: LuaLimits
    /// Whether it defines `merge(a, b)`, letting a global projection fold in parallel.
    public let hasMerge: Bool
    /// When replay takes snapshots, and how many it keeps (`snapshot_every`, `snapshot_keep`).
    public let snapshots: SnapshotPolicy
    /// `on_error`: what a deterministic handler failure does.
    public let onError: OnError

    /// Its script and helper modules, as a build stores them (`CodeHistory`).
    public let code: ProjectionCode
    /// The modules as the VM loads them: name, text and the path its errors name.
    let modules: [Module]
    /// The event fields the code can read (AVM_FIELD_* bits); see `EventFields`.
    let eventFields: UInt32

    var source: String { code.script.text }

    struct Module: Sendable {
        var name: String
        var source: String
        var file: String
    }

    /// The top-level fields a projection table may have.
    static let knownFields: Set<String> = [
        "version", "streams", "key", "init", "on", "columns", "limits", "merge", "snapshot_every", "snapshot_keep", "on_error",
    ]
    static let columnTypes: Set<String> = ["text", "integer", "real", "numeric"]
    /// A fresh sandboxed VM with this projection loaded, under its own limits with
    /// those `override` gives replaced.
    func makeVM(limits override: LuaLimitOverrides? = nil) throws -> LuaVM {
        let vm = try LuaVM(limits: override?.applied(to: limits) ?? limits)
        vm.setEventFields(eventFields)
        do {
            try vm.setColumns(columns.map { ($0.name, $0.type) })
            for module in modules {
                try vm.addModule(name: module.name, source: module.source, chunkName: module.file)
            }
            try vm.load(source: source, chunkName: file)
        } catch let error as LuaError {
            // Lua's message names file:line when the error is in the script; say the
            // file in any case.
            let message = error.message.hasPrefix(file) || error.message.contains(".lua:") ? error.message : "\(file): \(error.message)"
            throw ProjectionError(projection: name, message: message)
        }
        return vm
    }
}

/// When a projection's snapshots are taken and how many are kept.
public struct SnapshotPolicy: Sendable, Equatable {
    /// Replay takes a snapshot when the projection has moved this many seqs past its
    /// last one; 0 takes none automatically (`audit snapshot` still can).
    public var every: Int64
    /// Snapshots kept per projection; beyond it, the one whose loss leaves the smallest
    /// gap goes, so those kept stay spread over the whole log.
    public var keep: Int

    public static let `default` = SnapshotPolicy(every: 50_000, keep: 40)

    public init(every: Int64, keep: Int) {
        self.every = every
        self.keep = keep
    }
}

extension Projection {
    /// Loads `file` (a projection script) with the helper modules of `libDirectory`.
    ///
    /// - Throws: `ProjectionError` naming the file and, for Lua errors, the line.
    public static func load(file: String, libDirectory: String? = nil, defaultLimits: LuaLimits = .default) throws -> Projection {
        let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        if let problem = ProjectionNames.problem(name) {
            throw ProjectionError(projection: name, message: "\(file): \(problem)")
        }
        return try load(code: ProjectionCode.read(file: file, libDirectory: libDirectory), file: file, libDirectory: libDirectory, defaultLimits: defaultLimits)
    }

    /// Loads a projection from its code, wherever it was read (a folder, or the
    /// database's code history): the same code gives the same projection and hash.
    ///
    /// - Parameters:
    ///   - file: the path its errors name for the script (default: the code's own path).
    ///   - libDirectory: the folder its errors name for the modules (default: `lib`).
    public static func load(
        code: ProjectionCode, file: String? = nil, libDirectory: String? = nil, defaultLimits: LuaLimits = .default
    ) throws -> Projection {
        let file = file ?? code.script.path
        if let problem = ProjectionNames.problem(code.name) {
            throw ProjectionError(projection: code.name, message: "\(file): \(problem)")
        }
        let modules = code.modules.map { module in
            Module(
                name: module.moduleName, source: module.text,
                file: libDirectory.map { $0 + "/" + (module.path as NSString).lastPathComponent } ?? module.path)
        }
        let sources = code.files.map(\.text)
        // Run the script once in a VM to read its spec.
        let probe = Projection(
            name: code.name, file: file, version: 0, codeHash: code.hash, streams: nil, key: .stream, handledTypes: [],
            columns: [], limits: defaultLimits, hasMerge: false, snapshots: .default, onError: .stop, code: code, modules: modules,
            eventFields: EventFields.used(by: sources))
        let vm = try probe.makeVM()
        let spec: JSONValue
        do {
            spec = try JSONParser.parse(vm.describe())
        } catch {
            throw ProjectionError(projection: code.name, message: "\(file): \(error)")
        }
        return try Projection(spec: spec, probe: probe, defaultLimits: defaultLimits)
    }

    private init(spec: JSONValue, probe: Projection, defaultLimits: LuaLimits) throws {
        func fail(_ message: String) -> ProjectionError {
            ProjectionError(projection: probe.name, message: "\(probe.file): \(message)")
        }
        guard case .object(let fields) = spec else { throw fail("the projection must return a table") }
        for field in fields where !Projection.knownFields.contains(field.key) {
            throw fail("unknown field '\(field.key)' in the projection table (known: \(Projection.knownFields.sorted().joined(separator: ", ")))")
        }
        var version: Int64 = 1
        switch spec["version"] {
        case nil: break
        case .int(let v)? where v >= 1: version = v
        default: throw fail("'version' must be an integer 1 or more")
        }
        var key = KeyMode.stream
        switch spec["key"] {
        case nil, .string("stream")?: key = .stream
        case .string("global")?: key = .global
        case .string("<function>")?: key = .function
        default: throw fail("'key' must be \"stream\", \"global\" or a function(e)")
        }
        let hasMerge = spec["merge"] == .string("<function>")
        if spec["merge"] != nil, !hasMerge { throw fail("'merge' must be a function(a, b) returning the combined state") }
        if hasMerge, key != .global {
            throw fail("'merge' is used with key = \"global\" only (a keyed projection already folds in parallel by key)")
        }
        var handled: [String] = []
        if case .object(let handlers)? = spec["on"] { handled = handlers.map(\.key).sorted() }
        var columns: [Column] = []
        switch spec["columns"] {
        case nil: break
        case .object(let declared)?:
            for column in declared {
                guard column.key.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil,
                      !["key", "state"].contains(column.key.lowercased())
                else { throw fail("column name '\(column.key)' must be letters, digits and _ and not key or state") }
                guard case .string(let type) = column.value, Projection.columnTypes.contains(type.lowercased()) else {
                    throw fail("column '\(column.key)' must have a type: \"text\", \"integer\", \"real\" or \"numeric\"")
                }
                columns.append(Column(name: column.key, type: type.lowercased()))
            }
        default: throw fail("'columns' must be a table like { customer = \"text\", total = \"real\" }")
        }
        var limits = defaultLimits
        switch spec["limits"] {
        case nil: break
        case .object(let entries)?:
            for entry in entries {
                switch (entry.key, entry.value) {
                case ("memory_mb", .int(let mb)) where mb > 0 && mb <= LuaLimits.maxMemoryMB: limits.memoryBytes = Int(mb) << 20
                case ("instructions", .int(let n)) where n > 0: limits.instructionsPerEvent = n
                case ("instructions", .double(let n)) where n >= 1 && n < 9e18: limits.instructionsPerEvent = Int64(n)
                case ("seconds", .int(let n)) where n > 0 && Double(n) <= LuaLimits.maxCPUSeconds: limits.cpuSecondsPerEvent = Double(n)
                case ("seconds", .double(let n)) where n > 0 && n <= LuaLimits.maxCPUSeconds: limits.cpuSecondsPerEvent = n
                default:
                    throw fail(
                        "'limits' takes memory_mb (MB, an integer from 1 to \(LuaLimits.maxMemoryMB)), instructions (per event) "
                            + "and seconds (CPU time per event, at most \(Int(LuaLimits.maxCPUSeconds)))")
                }
            }
        default: throw fail("'limits' must be a table like { memory_mb = 64, instructions = 1e6, seconds = 0.5 }")
        }
        var snapshots = SnapshotPolicy.default
        switch spec["snapshot_every"] {
        case nil: break
        case .int(let n)? where n >= 0: snapshots.every = n
        case .double(let n)? where n >= 0 && n < 9e18 && n.rounded() == n: snapshots.every = Int64(n)
        default: throw fail("'snapshot_every' must be a number of events (0: no automatic snapshots)")
        }
        switch spec["snapshot_keep"] {
        case nil: break
        case .int(let n)? where n >= 1 && n <= 1000: snapshots.keep = Int(n)
        default: throw fail("'snapshot_keep' must be an integer from 1 to 1000")
        }
        var onError = OnError.stop
        switch spec["on_error"] {
        case nil: break
        case .string(let value)?:
            guard let parsed = OnError(rawValue: value) else { throw fail("'on_error' must be \"stop\" or \"park\", not \"\(value)\"") }
            onError = parsed
        default: throw fail("'on_error' must be \"stop\" or \"park\"")
        }
        if onError == .park, key == .global {
            throw fail("on_error = \"park\" needs a keyed projection: global projections can only stop")
        }
        self.init(
            name: probe.name, file: probe.file, version: version, codeHash: probe.codeHash,
            streams: spec["streams"]?.stringValue, key: key, handledTypes: handled, columns: columns, limits: limits,
            hasMerge: hasMerge, snapshots: snapshots, onError: onError, code: probe.code, modules: probe.modules, eventFields: probe.eventFields)
    }

    /// Loads every `*.lua` in `directory` (not in lib/), sorted by name. A file that
    /// fails to load is returned as an error beside the others; so are files whose
    /// names differ only in case (they would share a table), each naming the others.
    public static func loadAll(directory: String, defaultLimits: LuaLimits = .default) throws -> [Result<Projection, ProjectionError>] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw ProjectionError(projection: "*", message: "no projections folder at \(directory) (run `audit init`, or pass --projections)")
        }
        let lib = directory + "/lib"
        let files = entries.filter { $0.hasSuffix(".lua") }.sorted()
        let collisions = ProjectionNames.collisions(files.map { (String($0.dropLast(4)), directory + "/" + $0) })
        return files.map { entry in
            Result { () throws(ProjectionError) -> Projection in
                if let collision = collisions[String(entry.dropLast(4))] {
                    throw ProjectionError(projection: String(entry.dropLast(4)), message: collision)
                }
                do {
                    return try load(file: directory + "/" + entry, libDirectory: lib, defaultLimits: defaultLimits)
                } catch let error as ProjectionError {
                    throw error
                } catch {
                    throw ProjectionError(projection: String(entry.dropLast(4)), message: "\(error)")
                }
            }
        }
    }
}
