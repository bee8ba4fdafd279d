import CLuaSandbox
import Foundation
import Testing

@testable import AuditEngine

/// A float in state is spelled as Swift's `Double.description` spells it, as stored
/// events already are (docs/events.md): the C writer of states against Swift itself.
@Suite("One number, one spelling")
struct NumberTextTests {
    /// The state writer's text of `d`.
    static func written(_ d: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 40)
        let n = avm_format_double(d, &buffer)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The doubles of `values` the writer spells unlike Swift (at most 10, for the message).
    static func mismatches(_ values: some Sequence<Double>) -> [String] {
        var found: [String] = []
        for d in values where d.isFinite && written(d) != d.description {
            found.append("\(d.bitPattern): C \(written(d)), Swift \(d.description)")
            if found.count == 10 { break }
        }
        return found
    }

    @Test("random bit patterns (every exponent, subnormals included): the same text as Swift's")
    func randomBitPatterns() {
        var random = SplitMix64(seed: 0xD0_0B1E)
        let values = (0..<2_000_000).lazy.map { _ in Double(bitPattern: random.next()) }
        #expect(Self.mismatches(values).isEmpty)
    }

    @Test("numbers people write (few digits, at every scale) and random subnormals: the same text as Swift's")
    func shortDecimals() {
        var random = SplitMix64(seed: 7)
        var values: [Double] = []
        for _ in 0..<500_000 {
            // d.ddd × 10^e with 1 to 6 digits: the values where shortest digits matter most.
            let digits = Double(random.next() % 1_000_000)
            let exponent = Int(random.next() % 640) - 330
            values.append(digits * pow(10, Double(exponent)))
            values.append(Double(bitPattern: random.next() & 0x000F_FFFF_FFFF_FFFF))  // subnormal
            values.append(Double(Int64(bitPattern: random.next()) >> (random.next() % 64)))  // integers
        }
        #expect(Self.mismatches(values).isEmpty)
    }

    @Test("the edges: ±0, powers of two and of ten and their neighbours, around 2^53, 1e16 and 0.0001, the extremes")
    func edges() {
        var values: [Double] = [0, -0.0, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 1, 0.1, 1.0 / 3]
        for e in -1074...1023 { values.append(pow(2, Double(e))) }
        for e in -323...308 { values.append(Double("1e\(e)")!) }
        for anchor in [0x1p53, 1e16, 1e15, 1e-4, 1e-5, 0x1p54, 9e15, 1e17, 1e21, 1e22, 1e23] {
            var up = anchor, down = anchor
            for _ in 0..<2_000 {
                values.append(up)
                values.append(down)
                up = up.nextUp
                down = down.nextDown
            }
        }
        for i in 0..<100_000 { values.append(Double(i)); values.append(Double(i) / 100) }
        let all = values + values.map { -$0 } + values.map(\.nextUp) + values.map(\.nextDown)
        #expect(Self.mismatches(all).isEmpty)
    }

    static let documentedCases: [(Double, String)] = [
        (1e15, "1000000000000000.0"), (1e16, "1e+16"), (0x1p53, "9007199254740992.0"), (0x1p53 + 2, "9.007199254740994e+15"),
        (9e15, "9000000000000000.0"), (.leastNonzeroMagnitude, "5e-324"), (0.0001, "0.0001"), (0.00001, "1e-05"), (0.00012, "0.00012"),
        (100, "100.0"), (-0.0, "-0.0"), (0.1 + 0.2, "0.30000000000000004"), (1.5e300, "1.5e+300"), (123.456, "123.456"),
        (12345678901234567168, "1.2345678901234567e+19"), (-2.5e-7, "-2.5e-07"),
    ]

    @Test("the rule as docs/events.md states it", arguments: documentedCases)
    func documented(value: Double, text: String) {
        #expect(Self.written(value) == text)
        #expect(value.description == text)
    }

    @Test("a float in state reads as the same text in state as in the event it came from")
    func stateMatchesEvents() throws {
        let w = try Workspace()
        w.projection("p", "return { on = { T = function(s, e) s.v = e.data.v end } }")
        let values = ["1e15", "5e-324", "1e16", "0.0001", "1e-05", "9007199254740993.0", "100.0", "-0.0", "1.7976931348623157e308"]
        try w.ingest(values.enumerated().map { eventLine(stream: "k\($0.offset)", type: "T", data: #"{"v":\#($0.element)}"#) })
        try w.replay(["p"])
        for (i, text) in values.enumerated() {
            let swift = Double(text)!.description
            #expect(try w.state("p", "k\(i)") == #"{"v":\#(swift)}"#)
        }
    }
}
