// Embeds AuditEngine: opens a store, appends events, replays a projection over them,
// and reads its state. Run it from this folder (it reads projections/orders.lua):
//
//     swift run embed
import AuditEngine
import Foundation

let folder = NSTemporaryDirectory() + "embed-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: folder) }
FileHandle.standardError.write(Data("AuditEngine \(EngineVersion.current), store in \(folder)\n".utf8))

// The log: one SQLite file, created here.
let store = try EventStore(path: folder + "/audit.db", create: true)

// Append with optimistic concurrency: each event expects its stream's current version.
let events: [(stream: String, type: String, data: String, after: Int64)] = [
    ("order-1", "OrderPlaced", #"{"customer":"c1","amount":25}"#, 0),
    ("order-1", "ItemAdded", #"{"qty":2,"price":7.5}"#, 1),
    ("order-2", "OrderPlaced", #"{"customer":"c2","amount":10}"#, 0),
    ("order-2", "OrderCancelled", "{}", 1),
]
for e in events {
    let appended = try store.append(NewEvent(
        stream: e.stream, type: e.type, data: try JSONParser.parse(e.data), expectedVersion: .exactly(e.after)))
    print("appended seq \(appended.event.seq): \(e.stream) \(e.type), version \(appended.event.version)")
}

// Replay a projection: fold the log into its table.
let orders = try Projection.load(file: "projections/orders.lua")
for outcome in try store.replay([orders]) {
    if case .failed(let error) = outcome.status { throw error }
}

// Read its state: every key in key order, each state as canonical JSON.
try store.forEachState(projection: "orders") { key, state in
    print("\(key): \(state)")
}

// And the chain that makes the log tamper-evident: the four events appended, and the
// CodeBuilt record the replay appended for the build of `orders` (its code history).
let report = try store.verify()
print("verified \(report.events) events")
