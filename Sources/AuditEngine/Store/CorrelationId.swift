import Foundation

/// The correlation id the `event_correlations` index records for an event:
/// `meta.correlation_id` when it is a string, or an integer (as its decimal digits);
/// none for any other value. The index is derived from the log, so `verify` and the
/// `--correlation-id` filter recompute it from the stored, hashed `meta`.
enum CorrelationId {
    /// The id of an event's meta object, as the writer indexes it.
    static func of(_ meta: JSONValue?) -> String? {
        switch meta?["correlation_id"] {
        case .string(let id)?: return id
        case .int(let id)?: return String(id)
        default: return nil
        }
    }

    /// The key `"correlation_id":` as stored canonical JSON spells it: its text has no
    /// character canonical JSON escapes, so a top-level member appears exactly so.
    private static let key = Array(#""correlation_id":"#.utf8)

    /// The id of a stored meta text, as its UTF-8 bytes; nil when it has none or the
    /// text is not JSON.
    ///
    /// - Complexity: a byte search; the text is parsed only when the key occurs in it.
    static func of(storedMeta bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let base = bytes.baseAddress, contains(bytes, key) else { return nil }
        let value = try? JSONParser.parse(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count))
        return of(value).map { Array($0.utf8) }
    }

    /// Whether `needle` occurs in `haystack` (memchr finds each candidate start).
    private static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard let base = haystack.baseAddress, let first = needle.first, haystack.count >= needle.count else { return false }
        var offset = 0
        let lastStart = haystack.count - needle.count
        while offset <= lastStart {
            guard let hit = memchr(base + offset, Int32(first), lastStart - offset + 1) else { return false }
            let start = base.distance(to: UnsafeRawPointer(hit))
            let equal = needle.withUnsafeBytes { needle in
                needle.baseAddress.map { memcmp(base + start, $0, needle.count) == 0 } ?? false
            }
            if equal { return true }
            offset = start + 1
        }
        return false
    }
}
