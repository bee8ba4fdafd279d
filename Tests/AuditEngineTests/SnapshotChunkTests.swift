import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// Snapshot deltas stored as chunks of records (`SnapshotChunks`): read whole, one key
/// at a time, and carried over from the row-per-state layout of schema v6.
@Suite("Snapshot chunks")
struct SnapshotChunkTests {
    /// The states at `snapshot`, merged over its chain's deltas.
    static func states(_ store: EventStore, _ snapshot: SnapshotRecord, chain: [SnapshotRecord]) throws -> [String] {
        try store.readTransaction { db in
            let view = SnapshotView(record: snapshot, deltas: chain.filter { $0.seq <= snapshot.seq })
            var lines: [String] = []
            try SortedStates.merge(SnapshotStates.deltas(db, view, schema: "main")) {
                lines.append("\(String(decoding: $0, as: UTF8.self)) \(String(decoding: $1, as: UTF8.self))")
            }
            return lines
        }
    }

    @Test("deltas spanning many chunks give every key's state, merged in key order and one key at a time")
    func manyChunks() throws {
        let log = TemporalTests.lateLog(count: 2400, streams: 700, seed: 11)
        let w = try TemporalTests.built(log, parallel: 2)
        let chain = try w.store.snapshots().filter { $0.projection == "order_totals" }
        let chunks = try w.store.readTransaction { db in
            try Int.fetchOne(db, sql: "SELECT max(n) FROM (SELECT count(*) AS n FROM snapshot_chunks GROUP BY chain, delta)")!
        }
        #expect(chunks >= 5, "the test must span chunks: at most \(chunks) per delta")
        for snapshot in chain {
            let expected = try TemporalTests.replayedFromScratch(w, upTo: snapshot.seq)
            #expect(try Self.states(w.store, snapshot, chain: chain) == expected, "snapshot at \(snapshot.seq)")
            // Every 37th key, and keys before the first, between two and after the last.
            let view = SnapshotView(record: snapshot, deltas: chain.filter { $0.seq <= snapshot.seq })
            try w.store.readTransaction { db in
                for line in expected.enumerated().filter({ $0.offset % 37 == 0 }).map(\.element) {
                    let (key, state) = (String(line.prefix { $0 != " " }), String(line.drop { $0 != " " }.dropFirst()))
                    #expect(try SnapshotStates.state(db, view, schema: "main", key: key) == state)
                    let one = try SnapshotStates.deltas(db, view, schema: "main", key: key)
                    var found: [String] = []
                    try SortedStates.merge(one) { found.append(String(decoding: $1, as: UTF8.self)) }
                    #expect(found == [state])
                    #expect(try SnapshotStates.state(db, view, schema: "main", key: key + "~") == nil)
                }
                #expect(try SnapshotStates.state(db, view, schema: "main", key: "") == nil)
                #expect(try SnapshotStates.state(db, view, schema: "main", key: "zzzz") == nil)
            }
        }
        // One key's temporal question reads the snapshot's chunks for that key only.
        let time = TemporalSelection(asOf: try Timestamp(rfc3339: "2024-01-10T00:00:00Z"))
        let expected = try TemporalTests.oracle(w, time)["order_totals"]!
        let projection = try w.load("order_totals")
        for line in expected.enumerated().filter({ $0.offset % 53 == 0 }).map(\.element) {
            let key = String(line.prefix { $0 != " " })
            var got: [String] = []
            try w.store.forEachState(projection, at: time, key: key) { got.append("\($0) \($1)") }
            #expect(got == [line])
        }
    }

    @Test("a schema v6 database's snapshot rows move into chunks with their digests intact")
    func fromRowsPerState() throws {
        let log = TemporalTests.lateLog(count: 600, streams: 90, seed: 12)
        let w = try TemporalTests.built(log, parallel: 1)
        let time = TemporalSelection()
        let before = try TemporalTests.temporal(w, "order_totals", time, snapshots: true, parallel: 1)
        let snapshots = try w.store.snapshots()
        // Back to the v6 layout, as a build of that version left it.
        try w.store.pool.writeWithoutTransaction { db in
            try db.execute(sql: """
                CREATE TABLE snapshot_states (
                    chain INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,
                    PRIMARY KEY (chain, seq, key)
                ) WITHOUT ROWID
                """)
            for snapshot in snapshots {
                let view = SnapshotView(record: snapshot, deltas: [snapshot])
                try SortedStates.merge(SnapshotStates.deltas(db, view, schema: "main")) { key, state in
                    try db.execute(
                        sql: "INSERT INTO snapshot_states VALUES (?, ?, ?, ?)",
                        arguments: [snapshot.chain, snapshot.seq, String(decoding: key, as: UTF8.self), String(decoding: state, as: UTF8.self)])
                }
            }
            try db.execute(sql: """
                DROP TABLE snapshot_chunks;
                ALTER TABLE snapshots DROP COLUMN delta;
                DELETE FROM grdb_migrations WHERE identifier = 'v7-snapshot-chunks';
                """)
        }
        // Only v7 is missing (the later migrations stay applied), so it runs alone.
        try Schema.migrator.migrate(w.store.pool)
        let reopened = try EventStore(path: w.store.path)
        let migrated = try reopened.snapshots()
        #expect(migrated.map(\.seq) == snapshots.map(\.seq))
        #expect(migrated.map(\.deltaRows) == snapshots.map(\.deltaRows))
        var warnings: [String] = []
        let projection = try w.load("order_totals")
        let newest = try reopened.readTransaction { db in
            try Snapshots.newestUsable(db, projection: projection, asOf: nil, knownAt: nil, maxSeq: .max, warn: { warnings.append($0) })
        }
        #expect(newest?.seq == migrated.filter { $0.projection == "order_totals" }.last?.seq && warnings.isEmpty, "\(warnings)")
        var after: [String] = []
        try reopened.forEachState(projection, at: time) { after.append("\($0) \($1)") }
        #expect(after == before)
        #expect(try reopened.readTransaction { db in try db.tableExists("snapshot_states") } == false)
    }
}
