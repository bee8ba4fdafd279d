import Foundation
import Testing

@testable import AuditEngine

/// A workspace with a store and a projections folder.
final class Workspace {
    let dir = TempDir()
    let store: EventStore
    var projectionsDir: String { dir.file("projections") }

    init() throws {
        store = try dir.store()
        try FileManager.default.createDirectory(atPath: dir.file("projections/lib"), withIntermediateDirectories: true)
    }

    /// A workspace with the `order_totals` projection and an order log (see `orderLog`)
    /// ingested; the log's lines, for the expected states.
    static func withOrderTotals(count: Int, streams: Int, seed: UInt64) throws -> (Workspace, [String]) {
        let w = try Workspace()
        w.projection("order_totals", orderTotals)
        let log = orderLog(count: count, streams: streams, seed: seed)
        try w.ingest(log)
        return (w, log)
    }

    /// Writes projections/NAME.lua.
    func projection(_ name: String, _ source: String) {
        _ = FileManager.default.createFile(atPath: "\(projectionsDir)/\(name).lua", contents: Data(source.utf8))
    }

    func module(_ name: String, _ source: String) {
        _ = FileManager.default.createFile(atPath: "\(projectionsDir)/lib/\(name).lua", contents: Data(source.utf8))
    }

    func load(_ name: String, limits: LuaLimits = .default) throws -> Projection {
        try Projection.load(file: "\(projectionsDir)/\(name).lua", libDirectory: "\(projectionsDir)/lib", defaultLimits: limits)
    }

    func ingest(_ lines: [String]) throws {
        try store.ingest(path: dir.jsonl("in-\(UUID().uuidString).jsonl", lines), missingIds: .generate)
    }

    @discardableResult
    func replay(_ names: [String], _ options: ReplayOptions = ReplayOptions()) throws -> [ReplayOutcome] {
        try store.replay(names.map { try load($0) }, options: options)
    }

    /// Every state of a projection as "key state" lines, in key order.
    func dump(_ name: String) throws -> [String] {
        var lines: [String] = []
        try store.forEachState(projection: name) { lines.append("\($0) \($1)") }
        return lines
    }

    func state(_ name: String, _ key: String) throws -> String? {
        var found: String?
        try store.forEachState(projection: name, key: key) { found = $1 }
        return found
    }
}

/// The reference order projection (as in CONTRACT §3), from the repository's examples.
let orderTotals: String = try! String(contentsOfFile: repositoryRoot + "/projections/order_totals.lua", encoding: .utf8)

/// A deterministic random order log of `count` events over `streams` orders.
func orderLog(count: Int, streams: Int, seed: UInt64) -> [String] {
    var rng = SplitMix64(seed: seed)
    func next() -> UInt64 { rng.next() }
    var versions = [Int](repeating: 0, count: streams)
    return (0..<count).map { i in
        let s = Int(next() % UInt64(streams))
        versions[s] += 1
        if versions[s] == 1 {
            return #"{"stream":"order-\#(s)","type":"OrderPlaced","data":{"customer":"c\#(s % 7)","amount":\#(next() % 500)}}"#
        } else if versions[s] % 5 == 0 {
            return #"{"stream":"order-\#(s)","type":"OrderCancelled","data":{}}"#
        }
        return #"{"stream":"order-\#(s)","type":"ItemAdded","data":{"qty":\#(1 + next() % 3),"price":\#(1 + next() % 90)}}"#
    }
}

/// The order totals computed without the engine, as canonical state lines.
func expectedOrderTotals(_ lines: [String]) throws -> [String] {
    var states: [String: (customer: String?, total: Int64, status: String)] = [:]
    for line in lines {
        let e = try JSONParser.parse(line)
        let stream = e["stream"]!.stringValue!
        var s = states[stream] ?? (nil, 0, "open")
        switch e["type"]!.stringValue! {
        case "OrderPlaced":
            s.customer = e["data"]!["customer"]!.stringValue
            if case .int(let amount) = e["data"]!["amount"]! { s.total = amount }
        case "ItemAdded":
            if case .int(let q) = e["data"]!["qty"]!, case .int(let p) = e["data"]!["price"]! { s.total += q * p }
        default: s.status = "cancelled"
        }
        states[stream] = s
    }
    return states.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { key in
        let s = states[key]!
        let customer = s.customer.map { #""customer":"\#($0)","# } ?? ""
        return #"\#(key) {\#(customer)"status":"\#(s.status)","total":\#(s.total)}"#
    }
}

/// A message with the workspace's folder left out of its paths (Lua shortens long
/// ones to "...tail"): the same in every workspace.
func withoutFolder(_ message: String) -> String {
    message.replacingOccurrences(of: #"[^ "(]*/projections/"#, with: "projections/", options: .regularExpression)
}

extension ReplayOptions {
    /// Batches of `batch` events with a checkpoint after each, `parallel` workers, and
    /// the memory limit when given (states are then dropped and read back).
    static func batches(_ batch: Int, parallel: Int = 1, memory: Int? = nil) -> ReplayOptions {
        var options = ReplayOptions()
        options.batchSize = batch
        options.checkpointEvery = batch
        options.parallel = parallel
        if let memory { options.limits = LuaLimitOverrides(LuaLimits(memoryBytes: memory, instructionsPerEvent: 1_000_000)) }
        return options
    }
}

extension Workspace {
    /// Ingests `events` in `parts` parts and replays `name` after each, first stopping at
    /// each of `stops` that falls in the part (the next replay resumes from there, as
    /// after a kill): its states as `dump` gives them, or its failure as
    /// "failed at SEQ: MESSAGE" (the folder left out of paths).
    func replayInParts(_ name: String, _ events: [String], parts: Int = 1, stops: [Int64] = [], _ options: ReplayOptions) throws -> [String] {
        var options = options
        var failure: String?
        var ingested = 0
        for part in 0..<parts {
            let end = (part + 1) * events.count / parts
            try ingest(Array(events[ingested..<end]))
            let within = stops.filter { $0 > Int64(ingested) && $0 < Int64(end) }
            ingested = end
            for stop in within.map(Optional.some) + [nil] {
                options.toSeq = stop
                failure = nil
                if case .failed(let error)? = try replay([name], options).first?.status {
                    failure = "failed at \(error.seq.map(String.init) ?? "?"): " + withoutFolder(error.message)
                }
            }
        }
        if let failure { return [failure] }
        return try dump(name)
    }
}
