/// The result of a successful verification.
public struct VerifyReport: Sendable, Equatable {
    /// Events checked.
    public var events: Int64
    /// The hash of the last event (the chain head), hex.
    public var head: String
    /// Seqs (at most `IntegrityFindings.shownLimit`) of events holding values this
    /// build refuses at entry (U+0000 in a stream, type or id, …) whose hashes match the
    /// stored bytes: an older build accepted them. Not damage, but worth knowing.
    public var olderBuildSeqs: [Int64] = []
    /// How many such events there are in all.
    public var olderBuildCount = 0
    /// What was found of each of them, in `olderBuildSeqs` order.
    public var olderBuildNotes: [String] = []

    /// `{"ok":true,"events":N,"head":"<hex>"}`, with
    /// `"accepted_by_older_build":{"count":N,"seqs":[…]}` when there are such events.
    public var json: String {
        var text = "{\"ok\":true,\"events\":\(events),\"head\":\"\(head)\""
        if olderBuildCount > 0 {
            text += ",\"accepted_by_older_build\":{\"count\":\(olderBuildCount),\"seqs\":[\(olderBuildSeqs.map(String.init).joined(separator: ","))]}"
        }
        return text + "}"
    }
}

/// One thing `verify` found wrong.
public struct IntegrityProblem: Sendable, Equatable, CustomStringConvertible {
    /// The event it concerns; nil for the schema, the file, or a side table as a whole.
    public var seq: Int64?
    public var reason: String

    public var description: String { seq.map { "seq \($0): \(reason)" } ?? reason }
}

/// `verify` found the log damaged: every problem of the schema and the file, the first
/// `IntegrityFindings.shownLimit` problems at seqs, and how many there are in all.
public struct IntegrityFailure: AuditFailure, Equatable {
    public var problems: [IntegrityProblem]
    /// Problems found, shown or not.
    public var total: Int
    public var category: FailureCategory { .integrity }

    /// The seqs of the problems shown, in order.
    public var seqs: [Int64] { problems.compactMap(\.seq) }

    public var description: String {
        if total == 1, let only = problems.first {
            return only.seq.map { "integrity check failed at seq \($0): \(only.reason)" } ?? "integrity check failed: \(only.reason)"
        }
        var lines = ["integrity check failed: \(total) problems"]
        lines += problems.map { "  " + $0.description }
        if total > problems.count { lines.append("  … and \(total - problems.count) more at later seqs") }
        return lines.joined(separator: "\n")
    }
}

/// What a verification has found so far.
struct IntegrityFindings {
    /// Problems at seqs shown, and events accepted by an older build listed.
    static let shownLimit = 20

    private(set) var problems: [IntegrityProblem] = []
    private(set) var total = 0
    private var shownAtSeqs = 0
    private(set) var olderBuildSeqs: [Int64] = []
    private(set) var olderBuildNotes: [String] = []
    private(set) var olderBuildCount = 0

    var isEmpty: Bool { total == 0 }

    mutating func add(seq: Int64?, _ reason: String) {
        total += 1
        if seq != nil {
            guard shownAtSeqs < Self.shownLimit else { return }
            shownAtSeqs += 1
        }
        problems.append(IntegrityProblem(seq: seq, reason: reason))
    }

    mutating func olderBuild(seq: Int64, _ note: String) {
        olderBuildCount += 1
        if olderBuildSeqs.count < Self.shownLimit {
            olderBuildSeqs.append(seq)
            olderBuildNotes.append(note)
        }
    }

    /// The failure to throw, problems without a seq first, then by seq.
    var failure: IntegrityFailure {
        let ordered = problems.enumerated().sorted { a, b in
            switch (a.element.seq, b.element.seq) {
            case (nil, nil): return a.offset < b.offset
            case (nil, _): return true
            case (_, nil): return false
            case (let x?, let y?): return x != y ? x < y : a.offset < b.offset
            }
        }.map(\.element)
        return IntegrityFailure(problems: ordered, total: total)
    }
}
