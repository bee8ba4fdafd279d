import Testing

@testable import AuditEngine

@Suite("JSON parsing and canonical form")
struct JSONTests {
    @Test("canonical form sorts keys by bytes, keeps integers and floats apart, drops whitespace")
    func canonical() throws {
        let value = try JSONParser.parse(#" { "b" : 1, "a": [1.0, 2, -0.5, 1e3], "Z": {"y": null, "x": true}, "é": "\n\"" } "#)
        #expect(CanonicalJSON.string(value) == #"{"Z":{"x":true,"y":null},"a":[1.0,2,-0.5,1000.0],"b":1,"é":"\n\""}"#)
    }

    @Test("integers stay exact up to 64 bits; larger ones become doubles")
    func integers() throws {
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSONParser.parse("9223372036854775808") == .double(9223372036854775808.0))
        #expect(try JSONParser.parse("31.3") == .double(31.3))
    }

    @Test("escapes, including surrogate pairs, decode to UTF-8")
    func escapes() throws {
        #expect(try JSONParser.parse(#""a\u00e9\ud83d\ude00\t""#) == .string("aé😀\t"))
    }

    @Test(
        "invalid JSON is rejected with a reason",
        arguments: [
            ("{", "unexpected end"),
            (#"{"a":1,"a":2}"#, "duplicate key"),
            ("[1,]", "unexpected character"),
            ("01", "leading zero"),
            (#""\x""#, "invalid escape"),
            ("\"a\u{01}\"", "control character"),
            (#""\ud800""#, "unpaired surrogate"),
            ("1 2", "unexpected content"),
            ("1e999", "out of range"),
            ("nulx", "invalid literal"),
            ("nul", "unexpected end"),
        ])
    func invalid(input: String, reason: String) {
        #expect {
            try JSONParser.parse(input)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("invalid UTF-8 is rejected, not replaced")
    func invalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) {
            try bytes.withUnsafeBufferPointer { try JSONParser.parse($0) }
        }
    }

    @Test("nesting is bounded")
    func depth() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    }
}
