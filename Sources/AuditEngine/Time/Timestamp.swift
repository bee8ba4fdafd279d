import Foundation

/// A point in time with millisecond precision, the unit of every time the engine stores.
///
/// Its text form is always UTC and fixed-width, `YYYY-MM-DDTHH:MM:SS.sssZ`, so that
/// comparing the strings compares the times (the store relies on this for its
/// `occurred_at` and `recorded_at` indexes).
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// The current wall-clock time, truncated to the millisecond.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    /// The earliest and latest times the fixed-width form can express (years 0000–9999).
    public static let min = Timestamp(milliseconds: daysFromCivil(0, 1, 1) * 86_400_000)
    public static let max = Timestamp(milliseconds: daysFromCivil(9999, 12, 31) * 86_400_000 + 86_399_999)

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ`.
    public var description: String {
        let days = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        let msOfDay = milliseconds - days * 86_400_000
        let (y, m, d) = Timestamp.civilFromDays(days)
        var out = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int64, _ at: Int, _ width: Int) {
            var v = value
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
        }
        put(y, 0, 4); out[4] = UInt8(ascii: "-")
        put(m, 5, 2); out[7] = UInt8(ascii: "-")
        put(d, 8, 2); out[10] = UInt8(ascii: "T")
        put(msOfDay / 3_600_000, 11, 2); out[13] = UInt8(ascii: ":")
        put(msOfDay / 60_000 % 60, 14, 2); out[16] = UInt8(ascii: ":")
        put(msOfDay / 1000 % 60, 17, 2); out[19] = UInt8(ascii: ".")
        put(msOfDay % 1000, 20, 3); out[23] = UInt8(ascii: "Z")
        return String(decoding: out, as: UTF8.self)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Why a time could not be read.
public struct TimestampParseError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String {
        "invalid time \"\(text)\": \(reason) (expected RFC 3339, e.g. 2024-06-30T12:00:00Z or 2024-06-30T14:00:00+02:00)"
    }
}

extension Timestamp {
    /// Reads an RFC 3339 time (`2024-06-30T12:00:00Z`, `…T12:00:00.5+02:00`).
    ///
    /// The offset is applied, so the result is UTC. Fractions finer than a millisecond
    /// are truncated. `t` and `z` are accepted in lower case; a space in place of `T`
    /// is accepted, as RFC 3339 allows.
    public init(rfc3339 text: String) throws(TimestampParseError) {
        var copy = text
        let result: Result<Timestamp, TimestampParseError> = copy.withUTF8 { Timestamp.parse($0, text: text, allowDate: false) }
        self = try result.get()
    }

    /// Reads a time given on the command line: RFC 3339, or a date `YYYY-MM-DD`, which
    /// means the end of that day in UTC (`2024-06-30` → `2024-06-30T23:59:59.999Z`), so
    /// that `--as-of 2024-06-30` includes everything that happened on the 30th.
    public init(dateOrTime text: String) throws(TimestampParseError) {
        var copy = text
        let result: Result<Timestamp, TimestampParseError> = copy.withUTF8 { Timestamp.parse($0, text: text, allowDate: true) }
        self = try result.get()
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>, text: @autoclosure () -> String, allowDate: Bool) -> Result<Timestamp, TimestampParseError> {
        func fail(_ reason: String) -> Result<Timestamp, TimestampParseError> {
            .failure(TimestampParseError(text: text(), reason: reason))
        }
        func digits(_ at: Int, _ count: Int) -> Int64? {
            guard at + count <= b.count else { return nil }
            var v: Int64 = 0
            for i in at..<at + count {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard b.count >= 10, let year = digits(0, 4), b[4] == UInt8(ascii: "-"),
              let month = digits(5, 2), b[7] == UInt8(ascii: "-"), let day = digits(8, 2)
        else { return fail("date must be YYYY-MM-DD") }
        guard (1...12).contains(month) else { return fail("month \(month) out of range") }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let monthDays: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day >= 1, day <= monthDays[Int(month - 1)] else { return fail("day \(day) out of range") }
        let dayStart = daysFromCivil(year, month, day) * 86_400_000
        if b.count == 10 {
            guard allowDate else { return fail("a time of day and a zone are required") }
            return .success(Timestamp(milliseconds: dayStart + 86_399_999))
        }
        guard b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = digits(11, 2), b.count > 13, b[13] == UInt8(ascii: ":"),
              let minute = digits(14, 2)
        else { return fail("time must be HH:MM:SS") }
        guard b.count > 16, b[16] == UInt8(ascii: ":"), let second = digits(17, 2) else {
            return fail(b.count == 16 ? "seconds and a zone are required: HH:MM:SS, then Z or ±HH:MM" : "seconds are required: HH:MM:SS")
        }
        guard hour < 24, minute < 60, second < 61 else { return fail("time of day out of range") }
        var i = 19
        var millis: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale: Int64 = 100
            let fractionStart = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                millis += Int64(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > fractionStart else { return fail("digits expected after '.'") }
        }
        guard i < b.count else { return fail("a zone is required: Z or ±HH:MM") }
        var offsetMinutes: Int64 = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let oh = digits(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                  oh < 24, om < 60
            else { return fail("zone offset must be ±HH:MM") }
            offsetMinutes = (oh * 60 + om) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return fail("a zone is required: Z or ±HH:MM")
        }
        guard i == b.count else { return fail("unexpected text after the zone") }
        // A leap second (:60) is read as the last millisecond of its minute.
        let secondMillis = second == 60 ? 59_999 : second * 1000 + millis
        let ms = dayStart + hour * 3_600_000 + minute * 60_000 + secondMillis - offsetMinutes * 60_000
        let result = Timestamp(milliseconds: ms)
        guard result >= .min, result <= .max else { return fail("outside years 0000–9999 in UTC") }
        return .success(result)
    }
}
