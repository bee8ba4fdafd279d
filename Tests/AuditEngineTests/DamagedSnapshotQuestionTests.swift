import Testing

@testable import AuditEngine

/// A question that reads every state checks each delta of its snapshot as it loads it
/// (`BaseStates`), not before: a damaged one still sends it to the checked choice, which
/// passes over that snapshot and every later one, so the answer stays right.
@Suite("Questions from a damaged snapshot")
struct DamagedSnapshotQuestionTests {
    @Test("the newest snapshot's delta with a digit changed, a state gone, or cut short: every state and every query answer as folded from seq 1", arguments: [0, 1, 2])
    func newestDamaged(damage: Int) throws {
        let w = try TemporalTests.built(TemporalTests.lateLog(count: 500, streams: 50, seed: 12), parallel: 1)
        let time = TemporalSelection()
        let expected = try TemporalTests.temporal(w, "order_totals", time, snapshots: false, parallel: 1)
        let projection = try w.load("order_totals")
        let chain = try w.store.readTransaction { db in try Snapshots.chain(db, projection: projection, create: false)! }
        let newest = try #require(try w.store.readTransaction { db in try Snapshots.list(db, chain: chain) }.last)
        switch damage {
        case 0:  // a digit of a state changed (same length: only the digest tells)
            try TemporalTests.rewriteFirstChunk(w, chain: chain, delta: newest.delta) { records in
                let digit = records[0].state.lastIndex(where: \.isNumber)!
                var state = records[0].state
                state.replaceSubrange(digit...digit, with: state[digit] == "7" ? "8" : "7")
                return [(records[0].key, state)] + records.dropFirst()
            }
        case 1:  // a state gone
            try TemporalTests.rewriteFirstChunk(w, chain: chain, delta: newest.delta) { Array($0.dropFirst()) }
        default:  // a chunk cut short: it does not parse
            try w.store.pool.writeWithoutTransaction { db in
                try db.execute(
                    sql: "UPDATE snapshot_chunks SET records = substr(records, 1, length(records) - 3) WHERE chain = ? AND delta = ?",
                    arguments: [chain, newest.delta])
            }
        }
        #expect(try TemporalTests.temporal(w, "order_totals", time, snapshots: true, parallel: 1) == expected)
        #expect(try TemporalTests.temporal(w, "order_totals", time, snapshots: true, parallel: 2) == expected)
        var rows: [String] = []
        try w.store.query(
            sql: "SELECT key, state FROM order_totals ORDER BY key", at: time, projections: [projection], header: { _ in },
            row: { rows.append($0.map(\.text).joined(separator: " ")) })
        #expect(rows == expected)
    }
}
