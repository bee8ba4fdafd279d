import CLuaSandbox
import Testing

@testable import AuditEngine

/// Serialised states put in key order and merged (records.c), as the checkpoint writer
/// does with every flush: the table and the snapshots rely on bytewise key order,
/// shorter first, with each key once and its newest state.
@Suite("State records")
struct StateRecordsTests {
    /// Distinct keys of every shape the order must get right: empty, NUL and 0xFF bytes,
    /// one a prefix of another, and long keys alike in their first 16 bytes.
    private static func keys(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        let prefixes: [[UInt8]] = [[], Array("order-".utf8), Array("customer-account-0000".utf8), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
        var seen = Set<[UInt8]>([[], [0], [0, 0], Array("order-".utf8), Array("order-1".utf8), Array("order-1\u{0}".utf8)])
        while seen.count < count {
            let tail = (0..<Int.random(in: 0...24, using: &rng)).map { _ in
                [0, 1, 0x30, 0x39, 0x7F, 0xFF, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)!
            }
            seen.insert(prefixes.randomElement(using: &rng)! + tail)
        }
        return Array(seen).shuffled(using: &rng)
    }

    private static func records(_ pairs: [(key: [UInt8], state: String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, state) in pairs {
            key.withUnsafeBytes { k in Array(state.utf8).withUnsafeBytes { StateRecords.append(k, $0, to: &out) } }
        }
        return out
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, count: Int) throws -> [(key: [UInt8], state: String)] {
        var records = StateRecords(bytes, count: count)
        var out: [(key: [UInt8], state: String)] = []
        while let (key, state) = try records.next() { out.append((Array(key), String(decoding: state, as: UTF8.self))) }
        return out
    }

    private static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

    @Test("sorting puts any keys in bytewise order, shorter first, each with its own state", arguments: [0, 1, 2, 17, 300, 5_000])
    func sorts(count: Int) throws {
        for input in [Self.keys(count, seed: UInt64(count)), Self.keys(count, seed: 7).sorted(by: Self.precedes),
                      Self.keys(count, seed: 8).sorted(by: Self.precedes).reversed()] {
            let pairs = input.map { (key: $0, state: "{\"k\":\($0.count)}") }
            let bytes = Self.records(pairs)
            var out = [UInt8](repeating: 0, count: bytes.count)
            let status = bytes.withUnsafeBytes { b in
                out.withUnsafeMutableBytes { o in
                    avm_sort_records(b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count, pairs.count,
                                     o.baseAddress?.assumingMemoryBound(to: CChar.self))
                }
            }
            #expect(status == 0)
            let sorted = try out.withUnsafeBytes { try Self.decode($0, count: pairs.count) }
            #expect(sorted.map(\.key) == input.sorted(by: Self.precedes))
            #expect(sorted.allSatisfy { $0.state == "{\"k\":\($0.key.count)}" })
        }
    }

    @Test("merging runs gives each key once, in order, with the state of the newest run that has it (few runs scanned, many through a heap)")
    func merges() throws {
        var rng = SplitMix64(seed: 42)
        let all = Self.keys(2_000, seed: 3)
        for runCount in [0, 1, 2, 5, 8, 9, 20, 60] {
            var expected: [[UInt8]: String] = [:]
            let runs: [[UInt8]] = (0..<runCount).map { run in
                let keys = all.filter { _ in Int.random(in: 0..<3, using: &rng) == 0 }.sorted(by: Self.precedes)
                for key in keys { expected[key] = "{\"run\":\(run)}" }
                return Self.records(keys.map { (key: $0, state: "{\"run\":\(run)}") })
            }
            var out = [UInt8](repeating: 0, count: max(runs.reduce(0) { $0 + $1.count }, 1))
            var merged = 0
            let written = try Self.withBases(runs) { bases, lengths, counts in
                out.withUnsafeMutableBytes {
                    avm_merge_records(bases, lengths, counts, runs.count, $0.baseAddress!.assumingMemoryBound(to: CChar.self), &merged)
                }
            }
            #expect(written >= 0)
            let result = try out.withUnsafeBytes { try Self.decode(UnsafeRawBufferPointer(rebasing: $0[0..<written]), count: merged) }
            #expect(result.map(\.key) == expected.keys.sorted(by: Self.precedes), "\(runCount) runs")
            #expect(result.allSatisfy { expected[$0.key] == $0.state }, "\(runCount) runs")
        }
    }

    @Test("records whose lengths run past their end, or fall short of it, are refused, not read beyond")
    func refusesMalformedRuns() throws {
        let good = Self.records([(key: Array("a".utf8), state: "{}"), (key: Array("b".utf8), state: "{}")])
        for (bytes, count) in [(Array(good.dropLast()), 2), (good, 3), (good, 1), ([255, 255, 255, 255], 1)] {
            // Alone, and as the last of ten runs (merged through the heap).
            for before in [0, 9] {
                var out = [UInt8](repeating: 0, count: 64 * (before + 1))
                var merged = 0
                let runs = Array(repeating: good, count: before) + [bytes]
                let written = try Self.withBases(runs, counts: Array(repeating: 2, count: before) + [count]) { bases, lengths, counts in
                    out.withUnsafeMutableBytes {
                        avm_merge_records(bases, lengths, counts, runs.count, $0.baseAddress!.assumingMemoryBound(to: CChar.self), &merged)
                    }
                }
                #expect(written == -2, "\(bytes) as \(count) records after \(before) good runs")
            }
            var out = [UInt8](repeating: 0, count: 64)
            let sorted = bytes.withUnsafeBytes { b in
                out.withUnsafeMutableBytes { o in
                    avm_sort_records(b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count, count,
                                     o.baseAddress?.assumingMemoryBound(to: CChar.self))
                }
            }
            #expect(sorted == -2, "sorting \(bytes) as \(count) records")
        }
    }

    /// Calls `body` with the runs' base pointers, lengths and record counts (counted
    /// from the records unless given).
    private static func withBases<R>(
        _ runs: [[UInt8]], counts given: [Int]? = nil,
        _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?, UnsafePointer<Int>?) throws -> R
    ) throws -> R {
        let counts = try given ?? runs.map { run in try run.withUnsafeBytes { try Self.count($0) } }
        let copies = runs.map { run -> UnsafeMutablePointer<CChar> in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(run.count, 1))
            run.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(p), byteCount: run.count) }
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        let bases: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        let lengths = runs.map(\.count)
        return try bases.withUnsafeBufferPointer { b in
            try lengths.withUnsafeBufferPointer { l in try counts.withUnsafeBufferPointer { try body(b.baseAddress, l.baseAddress, $0.baseAddress) } }
        }
    }

    /// The records in well-formed bytes.
    private static func count(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        var at = 0
        var n = 0
        while at < bytes.count {
            for _ in 0..<2 { at += 4 + Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
            n += 1
        }
        return n
    }
}
