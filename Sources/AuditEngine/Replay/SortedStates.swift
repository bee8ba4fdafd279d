import CLuaSandbox
import Foundation
import GRDB

/// A source of (key, state) pairs in ascending bytewise key order (as SQLite orders
/// text), each key at most once. The buffers stay valid until the next `advance`.
protocol StateCursor: AnyObject {
    /// The current key; nil when the cursor is exhausted.
    var key: UnsafeRawBufferPointer? { get }
    var state: UnsafeRawBufferPointer { get }
    func advance() throws
}

/// Serialised states, copied out of a VM's flush (`LuaVM.FlushedStates` lives only
/// until the VM's next call): the changes of one checkpoint, kept until the next
/// snapshot. A VM writes them in no particular order; they are put in key order when
/// first read, which is on the checkpoint writer's thread, not the replay's.
final class StateRun: @unchecked Sendable {
    /// Sorted once, under `lock`; only read after.
    private var records: UnsafeMutableRawBufferPointer
    private var sorted = false
    private let lock = NSLock()
    let count: Int
    let byteCount: Int

    init(_ flushed: LuaVM.FlushedStates) {
        records = UnsafeMutableRawBufferPointer.allocate(byteCount: max(flushed.records.count, 1), alignment: 8)
        if !flushed.records.isEmpty { records.copyMemory(from: flushed.records) }
        count = flushed.count
        byteCount = flushed.records.count
    }

    /// States already in key order, each key once (`records` as `StateRecords` reads them).
    init(sorted records: [UInt8], count: Int) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(records.count, 1), alignment: 8)
        if !records.isEmpty { records.withUnsafeBytes { copy.copyMemory(from: $0) } }
        self.records = copy
        sorted = true
        self.count = count
        byteCount = records.count
    }

    /// `runs` (oldest first) merged: each key once, with its newest state, in key order.
    convenience init(merging runs: [StateRun]) {
        let (out, count, written) = Self.merge(runs)
        // Runs hold records their VM wrote itself: only memory can be short.
        precondition(written >= 0, "cannot merge a checkpoint's states (status \(written))")
        self.init(adopting: out, count: count, byteCount: written)
    }

    /// `runs` (oldest first, each in key order) merged as `init(merging:)` does, for
    /// runs read from the database (a snapshot's deltas), which may be damaged.
    /// - Throws: `DamagedChunk` when a run's records do not parse.
    convenience init(mergingStored runs: [StateRun]) throws {
        let (out, count, written) = Self.merge(runs)
        if written == -2 {
            out.deallocate()
            throw DamagedChunk(description: "a snapshot's chunks are damaged: their records do not parse")
        }
        precondition(written >= 0, "cannot merge a snapshot's states (status \(written))")
        self.init(adopting: out, count: count, byteCount: written)
    }

    /// `count` records in key order, each key once, in the first `byteCount` bytes of
    /// `records`, which the run now owns (and frees).
    init(adopting records: UnsafeMutableRawBufferPointer, count: Int, byteCount: Int) {
        self.records = records
        sorted = true
        self.count = count
        self.byteCount = byteCount
    }

    /// `avm_merge_records` over `runs`: the buffer (the caller's to free), the records
    /// written, and the bytes written or a negative status.
    private static func merge(_ runs: [StateRun]) -> (UnsafeMutableRawBufferPointer, Int, Int) {
        let capacity = runs.reduce(0) { $0 + $1.byteCount }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(capacity, 1), alignment: 8)
        let sources = runs.map { $0.sortedRecords() }
        var merged = 0
        let written = sources.map { $0.baseAddress.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
            .withUnsafeBufferPointer { bases in
                sources.map(\.count).withUnsafeBufferPointer { lengths in
                    runs.map(\.count).withUnsafeBufferPointer { counts in
                        avm_merge_records(
                            bases.baseAddress, lengths.baseAddress, counts.baseAddress, runs.count,
                            out.baseAddress!.assumingMemoryBound(to: CChar.self), &merged)
                    }
                }
            }
        withExtendedLifetime(runs) {}
        return (out, merged, written)
    }

    /// `runs` as one run: the run itself when there is one.
    static func merged(_ runs: [StateRun]) -> StateRun {
        runs.count == 1 ? runs[0] : StateRun(merging: runs)
    }

    /// Its records in key order, valid while the run lives.
    var recordsInOrder: StateRecords { StateRecords(sortedRecords(), count: count) }

    /// Calls `body` with each key and its state, in key order.
    func forEach(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        var records = recordsInOrder
        // The VM wrote these records itself: they are well formed.
        while let (key, state) = try? records.next() {
            try body(key, state)
        }
    }

    deinit { records.deallocate() }

    /// The records by key: made on the first `state(forKey:)`.
    private var index: KeyIndex?

    /// The state this run holds for `key` (`hash`: `KeyIndex.hash(key)`), if any. Valid
    /// while the run lives. Safe from several threads at once.
    func state(forKey key: UnsafeRawBufferPointer, hash: Int) -> UnsafeRawBufferPointer? {
        let records = sortedRecords()
        return keyIndex(records).state(forKey: key, hash: hash, in: records)
    }

    /// The state this run holds for `key`, as a string, if any.
    func state(of key: String) -> String? {
        var key = key
        return key.withUTF8 { key in
            let bytes = UnsafeRawBufferPointer(key)
            return state(forKey: bytes, hash: KeyIndex.hash(bytes)).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    private func keyIndex(_ records: UnsafeRawBufferPointer) -> KeyIndex {
        lock.lock()
        defer { lock.unlock() }
        if let index { return index }
        let made = KeyIndex(records, count: count)
        index = made
        return made
    }

    /// The records in key order.
    func sortedRecords() -> UnsafeRawBufferPointer {
        lock.lock()
        defer { lock.unlock() }
        if !sorted, count > 1 {
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: records.count, alignment: 8)
            let status = avm_sort_records(
                records.baseAddress!.assumingMemoryBound(to: CChar.self), byteCount, count,
                out.baseAddress!.assumingMemoryBound(to: CChar.self))
            // The VM wrote these records itself; only memory can be short.
            precondition(status == 0, "cannot sort a checkpoint's states (status \(status))")
            records.deallocate()
            records = out
        }
        sorted = true
        return UnsafeRawBufferPointer(start: records.baseAddress, count: byteCount)
    }
}

/// Where the records of a run are, by key: open addressing over a hash of the key
/// (Swift's `Hasher`, seeded per process: keys come from event data, and a weaker hash
/// would let colliding keys turn lookups into scans). A lookup costs about one cache
/// miss; a binary search of the records in key order cost twenty (a tenth of a replay
/// that evicts, measured).
final class KeyIndex: @unchecked Sendable {
    /// Per slot, record offset + 1 and the key's tag; 0: empty. At most half full.
    /// Written only by `init`.
    private let slots: UnsafeMutableBufferPointer<Int>
    private let mask: Int

    init(_ records: UnsafeRawBufferPointer, count: Int) {
        var capacity = 16
        while capacity < 2 * count { capacity *= 2 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0)
        // The VM wrote these records itself: they are well formed.
        var walk = StateRecords(records, count: count)
        while let (key, _) = try? walk.next() {
            let offset = key.baseAddress! - records.baseAddress! - 4  // of its length
            let hash = Self.hash(key)
            var i = hash & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = (offset + 1) << Self.tagBits | Self.tag(hash)
        }
    }

    deinit { slots.deallocate() }

    /// The state of `key`, whose `hash(_:)` is `hash`, in `records` (the run's, in key order).
    func state(forKey key: UnsafeRawBufferPointer, hash: Int, in records: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var i = hash & mask
        let tag = Self.tag(hash)
        while case let slot = slots[i], slot != 0 {
            if slot & (1 << Self.tagBits - 1) == tag {
                let offset = slot >> Self.tagBits - 1
                let found = Self.field(records, at: offset)
                if found.count == key.count, key.isEmpty || memcmp(found.baseAddress!, key.baseAddress!, key.count) == 0 {
                    return Self.field(records, at: offset + 4 + found.count)
                }
            }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Bits of a key's hash kept in its slot beside the record's offset, the high ones
    /// (the low ones pick the slot): a slot of another key is passed over without
    /// reading that key (a cache miss each).
    private static let tagBits = 20
    private static func tag(_ hash: Int) -> Int { Int(UInt(bitPattern: hash) >> (64 - tagBits)) }

    /// The same for every index in the process.
    static func hash(_ key: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: key)
        return hasher.finalize()
    }

    /// The field whose u32 length is at `offset`.
    private static func field(_ records: UnsafeRawBufferPointer, at offset: Int) -> UnsafeRawBufferPointer {
        let length = Int(UInt32(littleEndian: records.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        return UnsafeRawBufferPointer(start: records.baseAddress! + offset + 4, count: length)
    }
}

/// Serialised states: `count` records [u32 key length][key][u32 state length][state],
/// lengths little-endian, as a VM's flush writes them and a snapshot chunk stores
/// them. Read defensively: a chunk comes from the database and may be damaged.
struct StateRecords {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    private(set) var left: Int

    init(_ bytes: UnsafeRawBufferPointer, count: Int) {
        self.bytes = bytes
        left = count
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String { "a stored list of states is damaged (a length runs past its end, or bytes are left over)" }
    }

    /// The next record, or nil after the last.
    /// - Throws: `Malformed` when a length runs past the end, or bytes are left over.
    mutating func next() throws(Malformed) -> (key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer)? {
        guard left > 0 else {
            if offset != bytes.count { throw Malformed() }
            return nil
        }
        left -= 1
        let key = try field()
        return (key, try field())
    }

    private mutating func field() throws(Malformed) -> UnsafeRawBufferPointer {
        guard bytes.count - offset >= 4 else { throw Malformed() }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        offset += 4
        guard bytes.count - offset >= length else { throw Malformed() }
        defer { offset += length }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
    }

    /// Appends one record to `buffer`.
    static func append(_ key: UnsafeRawBufferPointer, _ state: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
        for field in [key, state] {
            withUnsafeBytes(of: UInt32(field.count).littleEndian) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: field)
        }
    }
}

/// The rows of a statement that selects (key, state) ordered by key.
final class StatementCursor: StateCursor {
    /// Its current row holds the key and state, then any other columns selected.
    let statement: SQLStatement
    private let reading: String
    private(set) var key: UnsafeRawBufferPointer?
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Whether the current row's key and state were stored as text (read before they
    /// are converted to it, after which SQLite no longer tells).
    private(set) var textual = true

    /// - Parameters:
    ///   - statement: prepared by GRDB, its arguments set.
    ///   - reading: what the rows are, for an error message.
    init(_ statement: Statement, reading: String) throws {
        self.statement = SQLStatement(statement)
        self.reading = reading
        try advance()
    }

    func advance() throws {
        if try statement.step("cannot read \(reading)") {
            textual = statement.storageClass(0) == .text && statement.storageClass(1) == .text
            key = statement.text(0)
            state = statement.text(1)
        } else {
            key = nil
        }
    }
}

enum SortedStates {
    /// Bytewise order, shorter first on a common prefix: SQLite's order for text.
    /// Eight bytes at a time: keys are short and often share a long prefix.
    @inline(__always)
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        var i = 0
        while i + 8 <= n {
            let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            if x != y { return x < y ? -1 : 1 }
            i += 8
        }
        while i < n {
            let x = a[i], y = b[i]
            if x != y { return x < y ? -1 : 1 }
            i += 1
        }
        return a.count - b.count
    }

    /// Calls `body` once per key of all `cursors`, in key order, with the state of the
    /// last cursor (by index) that holds the key: list them oldest first.
    static func merge(_ cursors: [any StateCursor], _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        let merged = MergedStates(cursors)
        while let key = merged.key {
            try body(key, merged.state)
            try merged.advance()
        }
    }
}

/// Several cursors merged into one: each key once, with the state of the last cursor
/// (by index) that holds it.
final class MergedStates: StateCursor {
    private var live: [any StateCursor]
    /// `live[i].key`, kept here so that finding the smallest reads one plain array.
    private var heads: [UnsafeRawBufferPointer]
    /// The cursors at the current key; the last one's state is the current state.
    private var holders: [Int] = []
    private(set) var key: UnsafeRawBufferPointer?
    private(set) var state = UnsafeRawBufferPointer(start: nil, count: 0)

    init(_ cursors: [any StateCursor]) {
        live = cursors.filter { $0.key != nil }
        heads = live.map { $0.key! }
        holders.reserveCapacity(live.count)
        findSmallest()
    }

    func advance() throws {
        // Only now: `key` points into one of the holders' buffers.
        var exhausted = false
        for index in holders {
            try live[index].advance()
            if let key = live[index].key { heads[index] = key } else { exhausted = true }
        }
        if exhausted {
            let keep = live.indices.filter { live[$0].key != nil }
            live = keep.map { live[$0] }
            heads = keep.map { heads[$0] }
        }
        findSmallest()
    }

    /// Few cursors (a chain's deltas, a projection's partitions): a linear scan of the
    /// heads beats a heap.
    private func findSmallest() {
        holders.removeAll(keepingCapacity: true)
        guard !heads.isEmpty else {
            key = nil
            return
        }
        heads.withUnsafeBufferPointer { heads in
            holders.append(0)
            var smallest = heads[0]
            for i in 1..<heads.count {
                let c = SortedStates.compare(heads[i], smallest)
                if c < 0 {
                    smallest = heads[i]
                    holders.removeAll(keepingCapacity: true)
                    holders.append(i)
                } else if c == 0 {
                    holders.append(i)
                }
            }
            key = smallest
        }
        state = live[holders.last!].state
    }
}
