import AuditEngine
import Foundation

/// Sequential replay of the reference projection against the hand-rolled baseline
/// (lua5.4 + lua-cjson over the same JSONL).
enum ReplayBenchmark {
    /// shared/bench/order_totals.lua: the reference projection.
    static let projection = """
        return {
          version = 1,
          streams = "order-*",
          init = function() return { total = 0, status = "open" } end,
          on = {
            OrderPlaced    = function(s, e) s.customer = e.data.customer; s.total = e.data.amount end,
            ItemAdded      = function(s, e) s.total = s.total + e.data.qty * e.data.price end,
            OrderCancelled = function(s, e) s.status = "cancelled" end,
          },
          columns = { customer = "text", total = "integer", status = "text" },
        }
        """

    /// Handles one of the three types: the others must cost almost nothing.
    static let cancelledOnly = """
        return {
          version = 1,
          streams = "order-*",
          on = { OrderCancelled = function(s, e) s.cancelled = true end },
          columns = { cancelled = "integer" },
        }
        """

    /// A global projection with merge, folded in parallel ranges.
    static let globalMerge = """
        return {
          version = 1,
          key = "global",
          init = function() return { orders = 0, revenue = 0 } end,
          on = {
            OrderPlaced = function(s, e) s.orders = s.orders + 1; s.revenue = s.revenue + e.data.amount end,
            ItemAdded   = function(s, e) s.revenue = s.revenue + e.data.qty * e.data.price end,
          },
          merge = function(a, b) return { orders = a.orders + b.orders, revenue = a.revenue + b.revenue } end,
        }
        """

    static let sources = ["order_totals": projection, "cancelled_only": cancelledOnly, "global_merge": globalMerge]

    /// shared/bench/baseline_order_totals.lua: what an analyst writes without an engine.
    static let baseline = """
        local cjson = require "cjson"
        local orders, events = {}, 0
        for line in io.lines(arg[1]) do
          local e = cjson.decode(line)
          events = events + 1
          local s = orders[e.stream]
          if e.type == "OrderPlaced" then
            orders[e.stream] = { customer = e.data.customer, total = e.data.amount, status = "open" }
          elseif e.type == "ItemAdded" and s then
            s.total = s.total + e.data.qty * e.data.price
          elseif e.type == "OrderCancelled" and s then
            s.status = "cancelled"
          end
        end
        local n, revenue = 0, 0
        for _, s in pairs(orders) do
          n = n + 1
          if s.status ~= "cancelled" then revenue = revenue + s.total end
        end
        print(string.format('{"orders":%d,"open_revenue":%d,"events":%d}', n, revenue, events))
        """

    /// Writes a benchmark projection into `dir/projections/` and returns it loaded.
    static func loadProjection(_ name: String, dir: String) throws -> Projection {
        let folder = dir + "/projections"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/\(name).lua"
        try sources[name]!.write(toFile: file, atomically: true, encoding: .utf8)
        return try Projection.load(file: file)
    }

    /// Child: rebuilds order_totals from seq 1 in `db` and prints the summary.
    static func engine(db: String, dir: String, parallel: Int, name: String = "order_totals", snapshots: Bool = true) throws -> Measurement {
        let store = try EventStore(path: db)
        let projection = try loadProjection(name, dir: dir)
        // From seq 1, taking snapshots at the default policy as a user's replay does.
        try store.deleteSnapshots(of: name)
        var options = ReplayOptions()
        options.rebuild = true
        options.parallel = parallel
        options.useSnapshots = snapshots
        var outcome: [ReplayOutcome] = []
        let (seconds, cpu) = try Measure.timed { outcome = try store.replay([projection], options: options) }
        guard case .rebuilt = outcome.first?.status else { throw BenchError("replay did not finish: \(outcome)") }
        var summary = ""
        let events = try store.head().seq
        guard name == "order_totals" else {
            let label = "\(name) " + (parallel == 1 ? "sequential" : "--parallel \(parallel)")
            return Measurement(name: label, events: Int(events), seconds: seconds, peakRSSMB: Measure.peakRSSMB(), timings: outcome.first?.timings)
        }
        try store.query(
            sql: "SELECT count(*), coalesce(sum(CASE WHEN status != 'cancelled' THEN total END), 0) FROM order_totals",
            header: { _ in }, row: { summary = #"{"orders":\#($0[0].text),"open_revenue":\#($0[1].text),"events":\#(events)}"# })
        let label = (parallel == 1 ? "engine sequential" : "engine --parallel \(parallel)") + (snapshots ? "" : " --no-snapshots")
        return Measurement(
            name: label, events: Int(events), seconds: seconds, peakRSSMB: Measure.peakRSSMB(), summary: summary, timings: outcome.first?.timings,
            cpuSeconds: cpu)
    }

    /// Runs the baseline with lua5.4 and returns its measurement and printed summary.
    static func runBaseline(file: String, dir: String) throws -> Measurement {
        let script = dir + "/baseline_order_totals.lua"
        try baseline.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/lua5.4")
        process.arguments = [script, file]
        let pipe = Pipe()
        process.standardOutput = pipe
        var output = Data()
        let seconds = try Measure.time {
            try process.run()
            output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
        }
        guard process.terminationStatus == 0 else {
            throw BenchError("the baseline failed (needs Debian's lua5.4 and lua-cjson: apt-get install lua5.4 lua-cjson)")
        }
        let summary = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var events = 0
        if let parsed = try? JSONParser.parse(summary), case .int(let n)? = parsed["events"] { events = Int(n) }
        return Measurement(name: "baseline lua+cjson", events: events, seconds: seconds, peakRSSMB: 0, summary: summary)
    }
}
