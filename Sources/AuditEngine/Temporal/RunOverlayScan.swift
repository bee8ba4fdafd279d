import CLuaSandbox
import GRDB

/// A scan of every key of an overlay whose base and changes are both in memory (a
/// snapshot's states merged, `BaseStates`, and the fold's, `ChangedStates`): the two runs
/// merged in C (`avm_overlay_next`), a row per call. `OverlayScan` does the same through
/// its sources, at about three times the cost per row (the scan was a tenth of a series
/// over the reference workload, measured); it serves every other overlay, and one key's
/// lookups.
final class RunOverlayScan: SQLKeyedCursor {
    /// Kept alive for the walk, which points into their records.
    private let runs: [StateRun]
    private let walk: OpaquePointer
    private let columns: StateColumns
    private var columnsRead = false
    private(set) var key = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var isAtEnd = false

    /// nil unless both the base and the changes of `overlay` are in memory (or none).
    init?(_ db: Database, _ overlay: StateOverlay) throws {
        let base: StateRun?
        switch overlay.base {
        case .none: base = nil
        case .states(let run): base = run
        case .snapshot, .table: return nil
        }
        let changes: StateRun?
        switch overlay.changes {
        case .none: changes = nil
        case .states(let run): changes = run
        case .table: return nil
        }
        columns = try StateColumns(overlay.columns, db)
        runs = [base, changes].compactMap { $0 }
        let b = base?.sortedRecords(), c = changes?.sortedRecords()
        guard let walk = avm_overlay_open(
            b?.baseAddress?.assumingMemoryBound(to: CChar.self), b?.count ?? 0, base?.count ?? 0,
            c?.baseAddress?.assumingMemoryBound(to: CChar.self), c?.count ?? 0, changes?.count ?? 0)
        else { throw StoreError.storage("out of memory reading the states of \(overlay.projection)") }
        self.walk = walk
        try advance()
    }

    deinit { avm_overlay_close(walk) }

    func advance() throws {
        var k: UnsafePointer<CChar>?, s: UnsafePointer<CChar>?
        var kl = 0, sl = 0
        columnsRead = false
        switch avm_overlay_next(walk, &k, &kl, &s, &sl) {
        case 1:
            key = UnsafeRawBufferPointer(start: k, count: kl)
            state = UnsafeRawBufferPointer(start: s, count: sl)
        case 0:
            isAtEnd = true
        default:
            // The engine wrote these runs itself (a snapshot's were checked against their digests).
            throw StoreError.storage("the states of a question are damaged in memory (internal error)")
        }
    }

    /// Sets column `column` of the current row (key, state, then the declared columns).
    func result(column: Int32, _ result: SQLResult) throws {
        switch column {
        case 0: result.set(text: key)
        case 1: result.set(text: state)
        default:
            if !columnsRead {
                try columns.read(state)
                columnsRead = true
            }
            columns.result(Int(column) - 2, result)
        }
    }
}
