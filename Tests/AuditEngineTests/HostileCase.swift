import Foundation
import Testing

@testable import AuditEngine

/// One file of the hostile corpus (Tests/AuditEngineTests/Hostile/NAME.lua): a projection,
/// and header comments at its top saying what must happen when it is replayed.
///
///     -- expect: instruction budget      a substring of the error that stops it ("ok": it must succeed)
///     -- limits: instructions=1e6 memory_mb=64 seconds=0.5
///                                        the run's limits, as `audit replay --instructions N
///                                        --memory-mb N --seconds S` would give them (also the
///                                        limits its top level is loaded under)
///     -- events: 10                      how many events it runs over (default 10), event i being
///                                        {"stream":"s<i%3>","type":"T","data":{"n":i,"x":0.1*i}}
///     -- within: 5                       seconds of wall time it may take (default 30): a hang
///                                        guard, asserted loosely
///     -- rss-mb: 200                     also replayed by the `audit` executable in a child
///                                        process, whose peak RSS must stay under this
struct HostileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var source: String
    /// nil: it must succeed ("-- expect: ok").
    var expected: String?
    /// From `-- limits:`, as the command line's names give them (instructions, memory_mb, seconds).
    var limitArguments: [(key: String, value: String)] = []
    var events = 10
    var within: Double = 30
    var rssMB: Int?

    var testDescription: String { name }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Hostile").path

    /// Every case of the corpus, by name.
    static let all: [HostileCase] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".lua") }.sorted().map { file in
            let source = (try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)) ?? ""
            return HostileCase(name: String(file.dropLast(4)), source: source)
        }
    }()

    init(name: String, source: String) {
        self.name = name
        self.source = source
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("--") else { break }
            let text = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            guard let colon = text.firstIndex(of: ":") else { continue }
            let key = text[..<colon], value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "expect": expected = value == "ok" ? nil : value
            case "limits":
                limitArguments = value.split(separator: " ").map { pair in
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
                }
            case "events": events = Int(value) ?? -1
            case "within": within = Double(value) ?? -1
            case "rss-mb": rssMB = Int(value) ?? -1
            default: break
            }
        }
    }

    /// What is wrong with the header, if anything.
    var headerProblems: [String] {
        var problems: [String] = []
        if !source.split(separator: "\n").contains(where: { $0.hasPrefix("-- expect:") }) {
            problems.append("no `-- expect:` line (a substring of the error, or ok)")
        }
        if events < 0 { problems.append("`-- events:` is not a number") }
        if within <= 0 { problems.append("`-- within:` is not a positive number of seconds") }
        if let rssMB, rssMB <= 0 { problems.append("`-- rss-mb:` is not a positive number") }
        if limits == nil { problems.append("`-- limits:` takes instructions=N memory_mb=N seconds=S") }
        return problems
    }

    /// The limits of `-- limits:` over the defaults (nil when one does not parse); `.default`
    /// when there is no such line.
    var limits: LuaLimits? {
        var limits = LuaLimits.default
        for (key, value) in limitArguments {
            guard let number = Double(value), number > 0 else { return nil }
            switch key {
            case "instructions": limits.instructionsPerEvent = Int64(number)
            case "memory_mb": limits.memoryBytes = Int(number) << 20
            case "seconds": limits.cpuSecondsPerEvent = number
            default: return nil
            }
        }
        return limits
    }

    /// The same limits as `audit replay` options (counts written out: the options take integers).
    var commandLineLimits: [String] {
        limitArguments.flatMap { key, value in
            let number = Double(value).map { $0.rounded() == $0 && key != "seconds" ? String(Int64($0)) : value } ?? value
            return ["--" + key.replacingOccurrences(of: "_", with: "-"), number]
        }
    }

    /// Event i (1-based) of the run.
    static func event(_ i: Int) -> String {
        #"{"id":"e-\#(i)","stream":"s\#(i % 3)","type":"T","data":{"n":\#(i),"x":\#(Double(i) * 0.1)}}"#
    }

    /// The projection replayed beside each case, and its states after `events` events.
    static let good = "return { on = { T = function(s, e) s.n = (s.n or 0) + 1; s.sum = (s.sum or 0) + e.data.n end } }"

    static func goodStates(events: Int) -> [String: String] {
        var states: [String: (n: Int, sum: Int)] = [:]
        for i in stride(from: 1, through: events, by: 1) { states["s\(i % 3)", default: (0, 0)].n += 1; states["s\(i % 3)"]!.sum += i }
        return states.mapValues { #"{"n":\#($0.n),"sum":\#($0.sum)}"# }
    }
}
