import Testing

@testable import AuditEngine

@Suite("Times")
struct TimestampTests {
    @Test(
        "RFC 3339 times normalise to fixed-width UTC",
        arguments: [
            ("2024-06-30T12:00:00Z", "2024-06-30T12:00:00.000Z"),
            ("2024-06-30T14:00:00+02:00", "2024-06-30T12:00:00.000Z"),
            ("2024-06-30T00:30:00.5-01:00", "2024-06-30T01:30:00.500Z"),
            ("2024-02-29t23:59:59.9999z", "2024-02-29T23:59:59.999Z"),
            ("1999-12-31 23:00:00-01:00", "2000-01-01T00:00:00.000Z"),
            ("1960-01-01T00:00:00Z", "1960-01-01T00:00:00.000Z"),
        ])
    func rfc3339(input: String, expected: String) throws {
        #expect(try Timestamp(rfc3339: input).description == expected)
    }

    @Test("a date means the end of that day, UTC")
    func date() throws {
        #expect(try Timestamp(dateOrTime: "2024-06-30").description == "2024-06-30T23:59:59.999Z")
        #expect(throws: TimestampParseError.self) { try Timestamp(rfc3339: "2024-06-30") }
    }

    @Test(
        "bad times are rejected",
        arguments: ["2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-06-30T12:00:00", "2024-06-30T25:00:00Z", "yesterday", "2024-06-30T12:00Z"])
    func invalid(input: String) {
        #expect(throws: TimestampParseError.self) { try Timestamp(dateOrTime: input) }
    }

    @Test("text order is time order")
    func ordering() throws {
        let times = ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:00:00Z", "2024-06-30T12:00:00Z"]
            .map { try! Timestamp(rfc3339: $0) }
        #expect(times == times.sorted())
        #expect(times.map(\.description) == times.map(\.description).sorted())
    }
}
