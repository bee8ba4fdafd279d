import AuditEngine
import Foundation
import Testing

/// The kit's own canonical JSON text (docs/auditor/verify_export.py: `canonical`,
/// `swift_double`, `quote`) is the engine's, byte for byte, on every kind of value —
/// so that an auditor recomputing the hash chain from exported rows gets the engine's
/// hashes — and both refuse the same texts.
@Suite("The auditor's kit writes the engine's canonical text")
struct AuditorKitCanonicalTests {
    /// JSON texts, one a line: numbers in several spellings around every threshold of
    /// the number rule, random floats of every exponent, integers at and past 64 bits,
    /// strings with every control character and the characters other encoders treat
    /// differently, key orders, depths, and texts that are not JSON.
    static func texts() -> [String] {
        var rng = SplitMix64(seed: 26)
        var texts: [String] = []
        func number(_ d: Double) {
            guard d.isFinite else { return }
            texts += ["[\(d)]", "[" + String(format: "%.17g", d) + "]", "[" + String(format: "%.3e", d) + "]"]
        }
        for _ in 0..<20_000 { number(Double(bitPattern: rng.next())) }
        for _ in 0..<5_000 { number(Double(Int64(bitPattern: rng.next()) % 100_000_000) / [1, 10, 100, 1e3, 1e6][Int(rng.next() % 5)]) }
        for exponent in -325...308 { for mantissa in [1.0, 1.5, 9.999999999999999] { number(mantissa * pow(10, Double(exponent))) } }
        for power in [53, 54, 60] {
            var d = pow(2, Double(power))
            for _ in 0..<50 { number(d); number(d.nextDown); number(-d); d = d.nextUp }
        }
        for threshold in [1e16, 1e-4, 1e-5, 1e21, 1e15] { number(threshold); number(threshold.nextUp); number(threshold.nextDown) }
        for p in 0...1023 { number(pow(2, Double(p))); number(-pow(2, -Double(p))) }
        number(.leastNonzeroMagnitude); number(.greatestFiniteMagnitude); number(.leastNormalMagnitude.nextDown)
        texts += [
            "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
            "123456789012345678901234567890", "-0", "0", "-0.0", "0e0", "-0e-0", "1E2", "1e+2", "1.0e-400", "1e-999999", "1e400",
            "-1e400", "1e309", String(repeating: "9", count: 400), "0." + String(repeating: "0", count: 400) + "1", "NaN", "Infinity",
            "-Infinity", "01", ".5", "1.", "+1", "1e", "[1,]", "{'a':1}", "tru", "", " 1 ", "\t[ 1 , 2 ]\r ",
        ]
        for _ in 0..<200 { texts.append(String(Int64(bitPattern: rng.next()))) }
        // Strings: each byte below 0x80 escaped, and raw where JSON allows it.
        for c in 0..<0x80 {
            texts.append(String(format: #""\u%04x""#, c))
            if c >= 0x20, c != 0x22, c != 0x5C { texts.append("\"" + String(UnicodeScalar(UInt8(c))) + "\"") }
        }
        texts += [
            #""\u2028\u2029 \ufeff \ufffd \uffff é e\u0301 😀 \ud83d\ude00 \/ \" \\ \b\f\n\r\t""#, "\"\u{2028}\u{7F}é😀\"", #""\ud800""#,
            #""\udc00x""#, #""\ud83d\u0041""#, "\"a\u{1}b\"", #""\x""#,
            #"{"b":1,"a":2,"é":3,"\uff01":4,"😀":5,"A":6,"":7,"a\u0000":8,"ab":9,"\u007f":10}"#, #"{"a":1,"a":2}"#, #"{"a":{"b":1,"b":1}}"#,
            String(repeating: "[", count: 128) + String(repeating: "]", count: 128),
            String(repeating: "[", count: 129) + String(repeating: "]", count: 129),
            String(repeating: #"{"k":"#, count: 128) + "1" + String(repeating: "}", count: 128),
            String(repeating: #"{"k":"#, count: 129) + "1" + String(repeating: "}", count: 129),
        ]
        // Random documents mixing all of it.
        let atoms = ["1", "-0.0", "1e21", "9007199254740993", "9007199254740993.0", "1e-7", "true", "null", #""\u0000é😀""#, "[]", "{}"]
        func document(_ depth: Int) -> String {
            switch rng.next() % (depth > 3 ? 1 : 3) {
            case 0: return atoms[Int(rng.next() % UInt64(atoms.count))]
            case 1: return "[" + (0..<Int(rng.next() % 4)).map { _ in document(depth + 1) }.joined(separator: ",") + "]"
            default:
                let keys = Set((0..<Int(rng.next() % 5)).map { _ in ["a", "B", "é", "😀", "\\uff01", "k\(rng.next() % 9)", ""][Int(rng.next() % 7)] })
                return "{" + keys.map { "\"\($0)\":" + document(depth + 1) }.joined(separator: ",") + "}"
            }
        }
        for _ in 0..<3_000 { texts.append(document(0)) }
        return texts
    }

    @Test("the same text as the engine for every value, and the same texts refused")
    func sameText() throws {
        let texts = Self.texts()
        #expect(!texts.contains { $0.contains("\n") })
        let dir = TempDir()
        let input = dir.path + "/texts.jsonl"
        try texts.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let driver = """
            import sys
            sys.path.insert(0, sys.argv[1])
            import verify_export as kit
            out = []
            for line in open(sys.argv[2], "rb").read().split(b"\\n"):
                try:
                    out.append(kit.canonical(kit.parse_json(line)))
                except kit.Invalid:
                    out.append("INVALID")
            sys.stdout.buffer.write("\\n".join(out).encode("utf-8", "surrogatepass"))
            """
        let kit = try python(["-c", driver, repositoryRoot + "/docs/auditor", input], in: dir.path)
        try #require(kit.status == 0, "\(kit.stderr)")
        let kitLines = kit.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        try #require(kitLines.count == texts.count)
        var differences: [String] = []
        var refused = 0
        for (text, kitText) in zip(texts, kitLines) {
            let engineText = (try? JSONParser.parse(text)).map(CanonicalJSON.string) ?? "INVALID"
            if engineText == "INVALID" { refused += 1 }
            if engineText != kitText { differences.append("\(text.prefix(80)): engine \(engineText.prefix(80)), kit \(kitText.prefix(80))") }
        }
        #expect(differences.isEmpty, "\(differences.count) of \(texts.count) differ:\n\(differences.prefix(20).joined(separator: "\n"))")
        // Only the 26 texts written above as not JSON (or out of range) are refused.
        #expect(refused == 26, "\(refused) refused")
    }
}
