import CLuaSandbox

/// Which fields of the event table `e` a projection's code can read.
///
/// Building `e` is most of the cost of folding an event, and most projections read
/// only `e.data`. A field is built when its name appears anywhere in the projection's
/// code or its lib modules — as an identifier (`e.occurred_at`), inside a string
/// (`e["occurred_at"]`, `load("return e.id")`) or in a comment. Code that mentions
/// `pairs` or `next` may enumerate `e`, so it gets every field. Only a field name
/// assembled at run time from pieces (`"occurred" .. "_at"`) would be missed.
enum EventFields {
    static let names: [(String, Int32)] = [
        ("seq", Int32(AVM_FIELD_SEQ)), ("id", Int32(AVM_FIELD_ID)), ("stream", Int32(AVM_FIELD_STREAM)),
        ("version", Int32(AVM_FIELD_VERSION)), ("type", Int32(AVM_FIELD_TYPE)),
        ("occurred_at", Int32(AVM_FIELD_OCCURRED_AT)), ("recorded_at", Int32(AVM_FIELD_RECORDED_AT)),
        ("data", Int32(AVM_FIELD_DATA)), ("meta", Int32(AVM_FIELD_META)),
    ]

    /// The AVM_FIELD_* bits for code made of `sources`.
    static func used(by sources: [String]) -> UInt32 {
        var words: Set<Substring> = []
        for source in sources {
            var start: String.Index?
            for index in source.indices {
                let c = source[index]
                let isWordCharacter = c == "_" || (c.isASCII && (c.isLetter || c.isNumber))
                if isWordCharacter {
                    if start == nil { start = index }
                } else if let s = start {
                    words.insert(source[s..<index])
                    start = nil
                }
            }
            if let s = start { words.insert(source[s...]) }
        }
        if words.contains("pairs") || words.contains("next") { return UInt32(AVM_FIELD_ALL) }
        var bits: UInt32 = 0
        for (name, bit) in names where words.contains(Substring(name)) { bits |= UInt32(bit) }
        return bits
    }
}
