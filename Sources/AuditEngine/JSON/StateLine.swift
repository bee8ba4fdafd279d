/// One state as `audit state --format jsonl` prints it: `{"key":…,"state":…}`.
public enum StateLine {
    /// Appends the line for `key` and `state` (canonical JSON), without a newline.
    public static func append(key: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"key":"#.utf8)
        CanonicalJSON.writeString(utf8: key, into: &out)
        out.append(contentsOf: #","state":"#.utf8)
        out.append(contentsOf: state)
        out.append(UInt8(ascii: "}"))
    }
}
