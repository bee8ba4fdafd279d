import AuditEngine
import Foundation

/// The reference order workload, the same shape as shared/bench/gen_orders.py:
/// N events over N/4 interleaved `order-<k>` streams; the first event of a stream is
/// OrderPlaced, every fifth OrderCancelled, the rest ItemAdded; one second apart from
/// 2024-01-01. Deterministic for a seed (SplitMix64, not Python's generator, so the
/// exact values differ from the script's while the shape is the same).
struct Workload {
    let events: Int
    let seed: UInt64

    var streams: Int { max(1, events / 4) }

    /// Writes the JSONL to `path`.
    func write(to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw BenchError("cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var rng = SplitMix64(seed: seed)
        var versions = [Int32](repeating: 0, count: streams)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        let start = Int64(1_704_067_200)  // 2024-01-01T00:00:00Z
        let regions = ["eu", "us", "apac"]
        for i in 0..<events {
            let s = Int(rng.next() % UInt64(streams))
            versions[s] += 1
            let v = versions[s]
            let time = timestamp(start + Int64(i))
            let line: String
            if v == 1 {
                let amount = 1 + rng.next() % 500
                line = #"{"id":"e\#(seed)-\#(i)","stream":"order-\#(s)","type":"OrderPlaced","occurred_at":"\#(time)","data":{"customer":"c\#(s % 1000)","amount":\#(amount),"region":"\#(regions[s % 3])"}}"#
            } else if v % 5 == 0 {
                line = #"{"id":"e\#(seed)-\#(i)","stream":"order-\#(s)","type":"OrderCancelled","occurred_at":"\#(time)","data":{"reason":"customer request"}}"#
            } else {
                let qty = 1 + rng.next() % 3, price = 1 + rng.next() % 90
                line = #"{"id":"e\#(seed)-\#(i)","stream":"order-\#(s)","type":"ItemAdded","occurred_at":"\#(time)","data":{"sku":"B\#(i % 50)","qty":\#(qty),"price":\#(price)}}"#
            }
            out.append(contentsOf: line.utf8)
            out.append(0x0A)
            if out.count > (1 << 20) - 512 {
                handle.write(Data(out))
                out.removeAll(keepingCapacity: true)
            }
        }
        handle.write(Data(out))
    }

    private func timestamp(_ seconds: Int64) -> String {
        let days = seconds / 86_400, rem = seconds % 86_400
        // Civil date from days since 1970 (Hinnant).
        let z = days + 719_468, era = z / 146_097, doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem / 60 % 60)):\(two(rem % 60)).000Z"
    }
}
