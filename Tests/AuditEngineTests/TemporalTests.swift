import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// The oracle of CONTRACT §4: a temporal result equals a from-scratch replay of exactly
/// the selected events, whatever snapshots or parallelism are used.
@Suite("Snapshots and point-in-time questions")
struct TemporalTests {
    /// Projections of three key kinds, taking snapshots often.
    static let projections = [
        ("order_totals", orderTotals.replacingOccurrences(of: "return {", with: "return { snapshot_every = 37, snapshot_keep = 5,")),
        ("by_customer", """
            return { snapshot_every = 53, snapshot_keep = 3, key = function(e) return e.data.customer end,
                     on = { OrderPlaced = function(s, e) s.orders = (s.orders or 0) + 1; s.last = e.occurred_at end } }
            """),
        ("totals", """
            return { snapshot_every = 41, key = "global", init = function() return { events = 0, amount = 0 } end,
                     on = { OrderPlaced = function(s, e) s.events = s.events + 1; s.amount = s.amount + e.data.amount end },
                     merge = function(a, b) return { events = a.events + b.events, amount = a.amount + b.amount } end }
            """),
    ]
    static let names = projections.map(\.0)

    /// An order log whose events mostly occur in seq order, but about one in five
    /// arrives late: it occurred up to a day before the events recorded just before it.
    static func lateLog(count: Int, streams: Int, seed: UInt64) -> [String] {
        var rng = seed &* 7919
        func next() -> UInt64 {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return rng >> 33
        }
        let start = try! Timestamp(rfc3339: "2024-01-01T00:00:00Z").milliseconds
        return orderLog(count: count, streams: streams, seed: seed).enumerated().map { i, line in
            var minutes = Int64(i) * 10
            if next() % 5 == 0 { minutes -= Int64(next() % 1440) }
            let occurred = Timestamp(milliseconds: start + minutes * 60_000).description
            return "{\"occurred_at\":\"\(occurred)\"," + line.dropFirst()
        }
    }

    static func workspace() throws -> Workspace {
        let w = try Workspace()
        for (name, source) in projections { w.projection(name, source) }
        return w
    }

    /// Ingests `log` in chunks a few milliseconds apart (so recorded_at varies),
    /// replaying after some of them with small batches (so snapshots are taken).
    static func built(_ log: [String], parallel: Int) throws -> Workspace {
        let w = try workspace()
        var options = ReplayOptions()
        options.batchSize = 23
        options.parallel = parallel
        for (n, chunk) in stride(from: 0, to: log.count, by: 150).enumerated() {
            try w.ingest(Array(log[chunk..<min(chunk + 150, log.count)]))
            if n % 2 == 0 { try w.replay(names, options) }
            usleep(3_000)
        }
        return w
    }

    /// A from-scratch replay of exactly the events `time` selects, in a fresh store.
    static func oracle(_ w: Workspace, _ time: TemporalSelection) throws -> [String: [String]] {
        var lines: [String] = []
        try w.store.forEachEvent(EventFilter(asOf: time.asOf, knownAt: time.knownAt)) { e in
            // The engine's records of the builds are its own (a fresh store has its own).
            guard !EngineRecords.contains(type: e.type, stream: e.stream) else { return }
            lines.append(#"{"id":"\#(e.id)","stream":"\#(e.stream)","type":"\#(e.type)","occurred_at":"\#(e.occurredAt)","data":\#(e.data)}"#)
        }
        let fresh = try workspace()
        if !lines.isEmpty { try fresh.ingest(lines) }
        var options = ReplayOptions()
        options.useSnapshots = false
        try fresh.replay(names, options)
        return try Dictionary(uniqueKeysWithValues: names.map { ($0, try fresh.dump($0)) })
    }

    static func temporal(_ w: Workspace, _ name: String, _ time: TemporalSelection, snapshots: Bool, parallel: Int) throws -> [String] {
        var options = TemporalOptions()
        options.useSnapshots = snapshots
        options.parallel = parallel
        var lines: [String] = []
        try w.store.forEachState(try w.load(name), at: time, options: options) { lines.append("\($0) \($1)") }
        return lines
    }

    /// Random question times: business times around and inside the log, system times
    /// between ingest chunks, both, and now.
    static func questions(_ w: Workspace, seed: UInt64) throws -> [TemporalSelection] {
        var recorded: [Timestamp] = []
        var occurred: [Timestamp] = []
        try w.store.forEachEvent { recorded.append($0.recordedAt); occurred.append($0.occurredAt) }
        var rng = seed
        func pick<T>(_ values: [T]) -> T {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return values[Int((rng >> 33) % UInt64(values.count))]
        }
        var result = [TemporalSelection(), TemporalSelection(asOf: Timestamp(milliseconds: occurred.min()!.milliseconds - 1))]
        for _ in 0..<4 { result.append(TemporalSelection(asOf: pick(occurred))) }
        for _ in 0..<2 { result.append(TemporalSelection(knownAt: pick(recorded))) }
        for _ in 0..<2 { result.append(TemporalSelection(asOf: pick(occurred), knownAt: pick(recorded))) }
        return result
    }

    @Test(
        "a temporal result equals a from-scratch replay of exactly the selected events, with late events, with and without snapshots, sequential and parallel",
        arguments: [UInt64(1), 2, 3])
    func oracleProperty(seed: UInt64) throws {
        let log = Self.lateLog(count: 700 + Int(seed) * 61, streams: 60 + Int(seed) * 13, seed: seed)
        let w = try Self.built(log, parallel: Int(seed % 2) + 1)
        let snapshots = try w.store.readTransaction { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM snapshots")! }
        #expect(snapshots >= 6, "the test must exercise snapshots")
        for time in try Self.questions(w, seed: seed) {
            let expected = try Self.oracle(w, time)
            for name in Self.names {
                for (useSnapshots, parallel) in [(true, 1), (false, 1), (true, 3)] {
                    let got = try Self.temporal(w, name, time, snapshots: useSnapshots, parallel: parallel)
                    #expect(got == expected[name], "\(name) at \(time), snapshots \(useSnapshots), parallel \(parallel)")
                }
            }
        }
    }

    @Test("a snapshot is used only when every event it holds is selected: late events make earlier ones unusable")
    func usableCondition() throws {
        let w = try Self.workspace()
        w.projection("count", """
            return { snapshot_every = 1, key = "global", on = { Tick = function(s, e) s.n = (s.n or 0) + 1 end } }
            """)
        // seq 1 occurs 10:00, seq 2 occurs 08:00 (late), seq 3 occurs 11:00.
        try w.ingest([
            #"{"stream":"a","type":"Tick","occurred_at":"2024-05-01T10:00:00Z","data":{}}"#,
            #"{"stream":"a","type":"Tick","occurred_at":"2024-05-01T08:00:00Z","data":{}}"#,
            #"{"stream":"a","type":"Tick","occurred_at":"2024-05-01T11:00:00Z","data":{}}"#,
        ])
        var options = ReplayOptions()
        options.batchSize = 1
        try w.replay(["count"], options)
        let taken = try w.store.readTransaction { db in try Snapshots.listAll(db) }
        #expect(taken.map(\.seq) == [1, 2, 3])
        #expect(taken.map(\.maxOccurredAt) == ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.000Z", "2024-05-01T11:00:00.000Z"])
        let projection = try w.load("count")
        func usable(_ asOf: String) throws -> Int64? {
            try w.store.readTransaction { db in
                try Snapshots.newestUsable(
                    db, projection: projection, asOf: try Timestamp(rfc3339: asOf), knownAt: nil, maxSeq: 3, warn: { _ in })?.seq
            }
        }
        // As of 09:00 only seq 2 is selected: no snapshot holds it without seq 1.
        #expect(try usable("2024-05-01T09:00:00Z") == nil)
        #expect(try usable("2024-05-01T10:30:00Z") == 2)
        #expect(try usable("2024-05-01T12:00:00Z") == 3)
        var states: [String] = []
        try w.store.forEachState(projection, at: TemporalSelection(asOf: try Timestamp(rfc3339: "2024-05-01T09:00:00Z"))) {
            states.append($1)
        }
        #expect(states == [#"{"n":1}"#])
    }

    @Test("a damaged snapshot is passed over with a warning, and so is every later one; the answer stays right")
    func damagedSnapshot() throws {
        let log = Self.lateLog(count: 500, streams: 50, seed: 9)
        let w = try Self.built(log, parallel: 1)
        let time = TemporalSelection()
        let expected = try Self.temporal(w, "order_totals", time, snapshots: false, parallel: 1)
        let projection = try w.load("order_totals")
        let chain = try w.store.readTransaction { db in try Snapshots.chain(db, projection: projection, create: false)! }
        let snapshots = try w.store.readTransaction { db in try Snapshots.list(db, chain: chain) }
        let seqs = snapshots.map(\.seq)
        #expect(seqs.count >= 3)
        // Edit one state of the second snapshot behind the engine's back.
        try Self.rewriteFirstChunk(w, chain: chain, delta: snapshots[1].delta) { records in
            [(records[0].key, #"{"total":999999}"#)] + records.dropFirst()
        }
        var warnings: [String] = []
        let usable = try w.store.readTransaction { db in
            try Snapshots.newestUsable(db, projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { warnings.append($0) })
        }
        #expect(usable?.seq == seqs[0])
        #expect(warnings.count == 1 && warnings[0].contains("seq \(seqs[1])"), "\(warnings)")
        #expect(try Self.temporal(w, "order_totals", time, snapshots: true, parallel: 1) == expected)
        // A deleted state is found the same way, and so is a chunk that does not parse.
        try Self.rewriteFirstChunk(w, chain: chain, delta: snapshots[0].delta) { Array($0.dropFirst()) }
        let none = try w.store.readTransaction { db in
            try Snapshots.newestUsable(db, projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { _ in })
        }
        #expect(none == nil)
        #expect(try Self.temporal(w, "order_totals", time, snapshots: true, parallel: 1) == expected)
        try w.store.pool.writeWithoutTransaction { db in
            try db.execute(
                sql: "UPDATE snapshot_chunks SET records = substr(records, 1, length(records) - 3) WHERE chain = ? AND delta = ?",
                arguments: [chain, snapshots[0].delta])
        }
        var malformed: [String] = []
        let unusable = try w.store.readTransaction { db in
            try Snapshots.newestUsable(db, projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { malformed.append($0) })
        }
        #expect(unusable == nil && malformed.first?.contains("seq \(seqs[0])") == true, "\(malformed)")
        #expect(try Self.temporal(w, "order_totals", time, snapshots: true, parallel: 1) == expected)
    }

    @Test("a question keeps reading the snapshot it chose while a replay thins or drops that snapshot")
    func snapshotChangedUnderAQuestion() throws {
        let w = try Self.built(Self.lateLog(count: 500, streams: 50, seed: 4), parallel: 1)
        let projection = try w.load("order_totals")
        let states = try TemporaryStates(storePath: w.store.path)
        func read(_ view: SnapshotView) throws -> [String] {
            try states.readStates { db in
                var lines: [String] = []
                try SortedStates.merge(try SnapshotStates.deltas(db, view, schema: "store")) { key, state in
                    lines.append(String(decoding: key, as: UTF8.self) + " " + String(decoding: state, as: UTF8.self))
                }
                return lines
            }
        }
        let view = try #require(try states.readStates { db in
            try Snapshots.newestUsable(db, schema: "store", projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { _ in })
        })
        let before = try read(view)
        #expect(before.count > 40)
        // Another connection thins the chain down to one snapshot, merging and deleting
        // the very deltas the view names, then drops the chain altogether.
        try w.store.writeTransaction { db in try Snapshots.thin(db, chain: view.chain, keep: 1, warn: { _ in }) }
        #expect(try w.store.snapshots().filter { $0.projection == "order_totals" }.count == 1)
        #expect(try read(view) == before)
        #expect(try states.readStates { db in try SnapshotStates.state(db, view, schema: "store", key: String(before[7].split(separator: " ")[0])) }
            == String(before[7].split(separator: " ", maxSplits: 1)[1]))
        try w.store.deleteSnapshots(of: "order_totals")
        #expect(try w.store.snapshots().filter { $0.projection == "order_totals" }.isEmpty)
        #expect(try read(view) == before)
        // A question that starts now sees no snapshot.
        let later = try TemporaryStates(storePath: w.store.path)
        #expect(try later.readStates { db in
            try Snapshots.newestUsable(db, schema: "store", projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { _ in })
        } == nil)
    }

    /// order_totals' states after a replay, in a new store, of `w`'s events up to `seq`.
    static func replayedFromScratch(_ w: Workspace, upTo seq: Int64) throws -> [String] {
        let fresh = try workspace()
        var lines: [String] = []
        try w.store.forEachEvent(EventFilter(toSeq: seq)) { e in
            guard !EngineRecords.contains(type: e.type, stream: e.stream) else { return }
            lines.append(#"{"id":"\#(e.id)","stream":"\#(e.stream)","type":"\#(e.type)","data":\#(e.data)}"#)
        }
        try fresh.ingest(lines)
        try fresh.replay(["order_totals"])
        return try fresh.dump("order_totals")
    }

    /// Rewrites the first chunk of a snapshot delta with `edit` applied to its records.
    static func rewriteFirstChunk(
        _ w: Workspace, chain: Int64, delta: Int64, _ edit: ([(key: String, state: String)]) -> [(key: String, state: String)]
    ) throws {
        try w.store.pool.writeWithoutTransaction { db in
            let row = try #require(try Row.fetchOne(
                db, sql: "SELECT first_key, records, count FROM snapshot_chunks WHERE chain = ? AND delta = ? ORDER BY first_key LIMIT 1",
                arguments: [chain, delta]))
            let blob: Data = row["records"]
            var records: [(key: String, state: String)] = []
            try blob.withUnsafeBytes { bytes in
                var reader = StateRecords(bytes, count: row["count"])
                while let (key, state) = try reader.next() {
                    records.append((String(decoding: key, as: UTF8.self), String(decoding: state, as: UTF8.self)))
                }
            }
            var out: [UInt8] = []
            for record in edit(records) {
                Array(record.key.utf8).withUnsafeBytes { key in
                    Array(record.state.utf8).withUnsafeBytes { StateRecords.append(key, $0, to: &out) }
                }
            }
            try db.execute(
                sql: "UPDATE snapshot_chunks SET records = ?, count = ? WHERE chain = ? AND delta = ? AND first_key = ?",
                arguments: [Data(out), edit(records).count, chain, delta, row["first_key"] as String])
        }
    }

    @Test("retention keeps at most snapshot_keep, spread over the log, and thinning loses no state")
    func retention() throws {
        let log = Self.lateLog(count: 900, streams: 70, seed: 4)
        let w = try Self.built(log, parallel: 1)
        let all = try w.store.readTransaction { db in try Snapshots.listAll(db) }
        let byProjection = Dictionary(grouping: all, by: \.projection)
        #expect(byProjection["order_totals"]!.count == 5)
        #expect(byProjection["by_customer"]!.count == 3)
        #expect(byProjection["totals"]!.count <= SnapshotPolicy.default.keep)
        let seqs = byProjection["order_totals"]!.map(\.seq)
        #expect(seqs.first! < 100, "the oldest is kept: \(seqs)")
        // Each kept snapshot still gives exactly the replay up to its seq.
        for snapshot in byProjection["order_totals"]! {
            let replayed = try Self.replayedFromScratch(w, upTo: snapshot.seq)
            let restored = try w.store.readTransaction { db -> [String] in
                let deltas = byProjection["order_totals"]!.filter { $0.seq <= snapshot.seq }
                var lines: [String] = []
                try SortedStates.merge(SnapshotStates.deltas(db, SnapshotView(record: snapshot, deltas: deltas), schema: "main")) {
                    lines.append("\(String(decoding: $0, as: UTF8.self)) \(String(decoding: $1, as: UTF8.self))")
                }
                return lines
            }
            #expect(restored == replayed, "snapshot at \(snapshot.seq)")
        }
    }

    @Test("a rebuild of unchanged code starts from the newest snapshot; changed code never uses the old ones")
    func rebuildFromSnapshot() throws {
        let log = Self.lateLog(count: 600, streams: 50, seed: 5)
        let w = try Self.built(log, parallel: 1)
        try w.replay(["order_totals"])
        let before = try w.dump("order_totals")
        var options = ReplayOptions()
        options.rebuild = true
        let outcome = try w.replay(["order_totals"], options)[0]
        #expect(outcome.status == .rebuilt)
        #expect(outcome.eventsApplied < 37, "started from a snapshot: \(outcome.eventsApplied) events")
        #expect(try w.dump("order_totals") == before)

        // New code: a new chain, built from seq 1; the old chain is dropped when it is promoted.
        w.projection("order_totals", Self.projections[0].1 + "\n-- changed")
        let changed = try w.replay(["order_totals"])[0]
        #expect(changed.status == .rebuilt)
        #expect(changed.eventsApplied == 600)
        #expect(try w.dump("order_totals") == before)
        let chains = try w.store.readTransaction { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM snapshot_chains WHERE projection = 'order_totals'")!
        }
        #expect(chains == 1)
    }

    @Test("a temporal query folds only the projections its SQL reads, and sees only the selected events")
    func temporalQuery() throws {
        let w = try Self.workspace()
        w.projection("broken", "return { on = { OrderPlaced = function(s, e) error('never folded') end } }")
        let log = Self.lateLog(count: 300, streams: 30, seed: 6)
        try w.ingest(log)
        let asOf = try Timestamp(rfc3339: "2024-01-01T20:00:00Z")
        let projections = try (Self.names + ["broken"]).map { try w.load($0) }
        var rows: [[SQLValue]] = []
        try w.store.query(
            sql: "SELECT (SELECT count(*) FROM order_totals) AS orders, (SELECT count(*) FROM events) AS events",
            at: TemporalSelection(asOf: asOf), projections: projections, header: { _ in }, row: { rows.append($0) })
        var expectedEvents = 0
        try w.store.forEachEvent(EventFilter(asOf: asOf)) { _ in expectedEvents += 1 }
        let expectedOrders = try Self.oracle(w, TemporalSelection(asOf: asOf))["order_totals"]!.count
        #expect(rows == [[.integer(Int64(expectedOrders)), .integer(Int64(expectedEvents))]])
        // Reading the broken projection folds it, and its failure is the error.
        #expect(throws: ProjectionError.self) {
            try w.store.query(
                sql: "SELECT count(*) FROM broken", at: TemporalSelection(asOf: asOf), projections: projections,
                header: { _ in }, row: { _ in })
        }
        // Nothing was written to the store: no tables, no catalog rows.
        let tables = try w.store.readTransaction { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE name IN ('order_totals', 'broken')")
        }
        #expect(tables.isEmpty)
    }
}
