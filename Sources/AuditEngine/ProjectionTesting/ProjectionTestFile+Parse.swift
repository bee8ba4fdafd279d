/// Reading the test file format (docs/testing.md): line by line, every problem
/// reported with its line, nothing run until the whole file reads.
extension ProjectionTestFile {
    /// When the first event of a case gives no `occurred_at`: 2024-01-01T00:00:00.000Z.
    /// Each later event without one occurs a minute after the event before it, so a
    /// case's times are the same on every run.
    public static let defaultStart = Timestamp(milliseconds: 1_704_067_200_000)
    static let defaultStep: Int64 = 60_000

    /// Parses the text of a test file.
    ///
    /// - Throws: `TestFileError` listing every bad line.
    public static func parse(_ text: String, path: String) throws(TestFileError) -> ProjectionTestFile {
        var parser = Parser()
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            parser.read(line: raw.trimmingCharacters(in: .whitespacesAndNewlines), number: index + 1)
        }
        parser.endCase()
        if parser.cases.isEmpty, parser.problems.isEmpty {
            parser.problems.append(.init(line: 1, message: "no test cases: start one with a line `case WHAT IT CHECKS`"))
        }
        guard parser.problems.isEmpty else {
            throw TestFileError(file: path, problems: parser.problems.enumerated().sorted { ($0.1.line, $0.0) < ($1.1.line, $1.0) }.map(\.1))
        }
        return ProjectionTestFile(path: path, projection: projectionName(ofPath: path), cases: parser.cases)
    }
}

private struct Parser {
    var cases: [ProjectionTestCase] = []
    var problems: [TestFileError.Problem] = []
    var current: ProjectionTestCase?
    var caseLines: [String: Int] = [:]
    /// The current case's event ids and expected keys, with their lines: a case of many
    /// events is read in linear time.
    var idLines: [String: Int] = [:]
    var expectedKeyLines: [String: Int] = [:]
    /// Problems found before the current case began: a case whose own lines have
    /// problems is not also told it lacks an expectation.
    var problemsBeforeCase = 0

    mutating func fail(_ line: Int, _ message: String) {
        problems.append(.init(line: line, message: message))
    }

    mutating func read(line text: String, number: Int) {
        if text.isEmpty || text.hasPrefix("#") { return }
        if text == "case" || text.hasPrefix("case ") || text.hasPrefix("case\t") {
            endCase()
            let name = text.dropFirst(4).trimmingCharacters(in: .whitespaces)
            if name.isEmpty { fail(number, "a case needs a name: `case WHAT IT CHECKS`") }
            if let earlier = caseLines[name] { fail(number, "a case named \"\(name)\" is already at line \(earlier)") }
            caseLines[name] = number
            current = ProjectionTestCase(name: name, line: number, events: [], expectations: [])
            idLines = [:]
            expectedKeyLines = [:]
            problemsBeforeCase = problems.count
            return
        }
        guard current != nil else {
            fail(number, "this comes before the first case: start one with a line `case WHAT IT CHECKS`")
            return
        }
        if text.hasPrefix("{") {
            event(text, number)
        } else if text.hasPrefix("expect ") || text.hasPrefix("expect\t") {
            expectation(text.dropFirst(6).trimmingCharacters(in: .whitespaces), number)
        } else {
            fail(number, "expected `case NAME`, an event as a JSON object on one line, `expect …`, or a # comment")
        }
    }

    // MARK: events

    mutating func event(_ text: String, _ number: Int) {
        if !current!.expectations.isEmpty {
            fail(number, "events come before the case's `expect` lines (expectations are checked after all its events)")
            return
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(text, outerLevels: 1)  // data may nest as deep as ingest takes it
        } catch {
            fail(number, "an event must be one JSON object on one line: \(error)")
            return
        }
        guard case .object(let members) = value else { return fail(number, "an event must be a JSON object") }
        var stream: String?, type: String?, id: String?, data = JSONValue.object([]), meta: JSONValue?
        var occurredAt: Timestamp?
        for member in members {
            switch (member.key, member.value) {
            case ("stream", .string(let s)): stream = s
            case ("type", .string(let s)): type = s
            case ("id", .string(let s)): id = s
            case ("data", let v): data = v
            case ("meta", let v): meta = v
            case ("occurred_at", .string(let s)):
                do {
                    occurredAt = try Timestamp(rfc3339: s)
                } catch {
                    return fail(number, "\"occurred_at\": \(error)")
                }
            case ("stream", _), ("type", _), ("id", _), ("occurred_at", _):
                return fail(number, "\"\(member.key)\" must be a string, not \(member.value.kindDescription)")
            case ("seq", _), ("version", _), ("recorded_at", _), ("hash", _):
                return fail(number, "\"\(member.key)\" is assigned by the store: a case's events get seq 1, 2, 3 … in order")
            default:
                return fail(number, "unknown field \"\(member.key)\" (a test event has stream, type, data, meta, occurred_at, id)")
            }
        }
        guard let stream else { return fail(number, "missing \"stream\"") }
        guard let type else { return fail(number, "missing \"type\"") }
        let position = current!.events.count + 1
        let previous = current!.events.last?.event.occurredAt
        let event = NewEvent(
            stream: stream, type: type, data: data, meta: meta,
            occurredAt: occurredAt ?? previous.map { Timestamp(milliseconds: $0.milliseconds + ProjectionTestFile.defaultStep) }
                ?? ProjectionTestFile.defaultStart,
            id: id ?? "event-\(position)")
        do {
            _ = try PreparedEvent(event)
        } catch {
            return fail(number, error.reason)
        }
        if let clash = idLines[event.id!] {
            return fail(number, "the id \"\(event.id!)\" is already used at line \(clash) of this case")
        }
        idLines[event.id!] = number
        current!.events.append(.init(line: number, event: event))
    }

    // MARK: expectations

    mutating func expectation(_ text: String, _ number: Int) {
        guard let (key, quoted, rest) = splitKey(text, number) else { return }
        let kind: ProjectionTestExpectation.Kind
        let stateForm = rest.hasPrefix("{") || rest.hasPrefix("[") || rest.hasPrefix("has ") || rest == "absent"
        if key == "error", !quoted, !stateForm {
            guard let failure = failure(rest, number) else { return }
            kind = failure
        } else if rest == "absent" {
            kind = .absent(key: key)
        } else if rest.hasPrefix("has ") || rest.hasPrefix("has\t") {
            guard let value = json(rest.dropFirst(3).trimmingCharacters(in: .whitespaces), number) else { return }
            guard case .object = value else { return fail(number, "`has` takes a JSON object of the fields to compare") }
            kind = .includes(key: key, value)
        } else if rest.hasPrefix("{") || rest.hasPrefix("[") {
            guard let value = json(rest, number) else { return }
            guard case .object = value else {
                return fail(number, "a state is a JSON object ({…}), not \(value.kindDescription): `expect \(key) {\"items\":[1]}`")
            }
            kind = .state(key: key, value)
        } else {
            return fail(number, "after `expect \(key)` give its state as JSON ({…}), `has {…}` for some fields, or `absent`; or write `expect error \"text\"`")
        }
        if case .failure = kind, current!.expectations.contains(where: { if case .failure = $0.kind { true } else { false } }) {
            return fail(number, "a case expects at most one error")
        }
        if let key = kind.key {
            if let earlier = expectedKeyLines[key] { return fail(number, "key \"\(key)\" is already expected at line \(earlier)") }
            expectedKeyLines[key] = number
        }
        current!.expectations.append(.init(line: number, kind: kind))
    }

    /// The key at the start of an expect line: a JSON string, or text up to a space.
    mutating func splitKey(_ text: String, _ number: Int) -> (String, Bool, String)? {
        if text.isEmpty { fail(number, "`expect` needs a key: `expect KEY {…}`"); return nil }
        if text.hasPrefix("\"") {
            var escaped = false
            var end: String.Index?
            for index in text.indices.dropFirst() {
                if escaped { escaped = false; continue }
                if text[index] == "\\" { escaped = true } else if text[index] == "\"" { end = index; break }
            }
            guard let end, case .string(let key)? = try? JSONParser.parse(String(text[...end])) else {
                fail(number, "the quoted key is not a valid JSON string")
                return nil
            }
            return (key, true, text[text.index(after: end)...].trimmingCharacters(in: .whitespaces))
        }
        let key = text.prefix { $0 != " " && $0 != "\t" }
        return (String(key), false, text.dropFirst(key.count).trimmingCharacters(in: .whitespaces))
    }

    /// `[at N] ["text"]` after `expect error`.
    mutating func failure(_ text: String, _ number: Int) -> ProjectionTestExpectation.Kind? {
        var rest = Substring(text)
        var at: Int?
        if rest.hasPrefix("at ") {
            rest = rest.dropFirst(3).drop { $0 == " " }
            let digits = rest.prefix { $0.isNumber }
            guard let n = Int(digits), n >= 1 else {
                fail(number, "`expect error at N`: N is the event's position in the case (1 for its first event)")
                return nil
            }
            guard n <= current!.events.count else {
                fail(number, "`expect error at \(n)`: the case has \(current!.events.count) event(s) before this line")
                return nil
            }
            at = n
            rest = rest.dropFirst(digits.count).drop { $0 == " " }
        }
        var containing = ""
        if !rest.isEmpty {
            guard case .string(let s)? = try? JSONParser.parse(String(rest)) else {
                fail(number, "the error text must be a JSON string: expect error at 2 \"part of the message\"")
                return nil
            }
            containing = s
        }
        return .failure(atEvent: at, containing: containing)
    }

    mutating func json(_ text: String, _ number: Int) -> JSONValue? {
        do {
            return try JSONParser.parse(text)
        } catch {
            fail(number, "the expected state must be JSON on one line: \(error)")
            return nil
        }
    }

    mutating func endCase() {
        guard let done = current else { return }
        current = nil
        if done.expectations.isEmpty, problems.count == problemsBeforeCase {
            fail(done.line, "case \"\(done.name)\" has no `expect` line: say what the state must be after its events")
        } else if done.expectedFailure != nil, done.expectations.count > 1 {
            fail(done.line, "case \"\(done.name)\" expects an error and states: a failed replay keeps no new state, so put them in separate cases")
        }
        cases.append(done)
    }
}

extension ProjectionTestExpectation.Kind {
    /// The key it is about, if any.
    var key: String? {
        switch self {
        case .state(let key, _), .includes(let key, _), .absent(let key): return key
        case .failure: return nil
        }
    }
}
