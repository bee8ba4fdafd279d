import Foundation

/// What one test case gave.
public struct ProjectionTestResult: Sendable {
    public var testCase: ProjectionTestCase
    /// Empty when the case passed; else what differed, each with the line of the
    /// `expect` (or `case`) it concerns.
    public var problems: [TestFileError.Problem]

    public var passed: Bool { problems.isEmpty }
}

extension ProjectionTestCase {
    /// Runs the case with the engine itself: appends its events to a new, empty store
    /// in `directory` (one transaction, so they get seq 1, 2, 3 …), replays `projection`
    /// into it with `EventStore.replay`, and compares the states it stored.
    ///
    /// When the replay fails at a checkpoint without naming one event (a state that
    /// cannot be stored, a column type mismatch), it is replayed again one event per
    /// checkpoint, so that the failure names the event.
    ///
    /// Each replay uses a database in a new folder under `directory`, removed before
    /// this returns.
    ///
    /// - Throws: only when the temporary store cannot be used (disk, SQLite).
    public func run(_ projection: Projection, directory: String) throws -> ProjectionTestResult {
        let scratch = directory + "/" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var outcome = try replay(projection, directory: scratch, oneEventAtATime: false)
        if case .failed(let error) = outcome.status, error.seq == nil {
            let located = try replay(projection, directory: scratch, oneEventAtATime: true)
            if case .failed(let better) = located.status, better.seq != nil { outcome = located }
        }
        return ProjectionTestResult(testCase: self, problems: try check(outcome, projection: projection))
    }

    private func replay(_ projection: Projection, directory: String, oneEventAtATime: Bool) throws -> (status: ReplayOutcome.Status, store: EventStore) {
        let folder = directory + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let store = try EventStore(path: folder + "/case.db", create: true)
        var prepared: [PreparedEvent] = []
        for given in events {
            do {
                prepared.append(try PreparedEvent(given.event))  // checked when the file was read
            } catch {
                throw StoreError.invalidEvent(reason: "line \(given.line): \(error.reason)")
            }
        }
        try store.writeTransaction { db in
            let writer = try EventWriter(db)
            for event in prepared { _ = try writer.write(event) }
            try writer.finish()
        }
        var options = ReplayOptions()
        options.parallel = 1
        if oneEventAtATime {
            options.batchSize = 1
            options.checkpointEvery = 1
        }
        let outcomes = try store.replay([projection], options: options)
        return (outcomes.first?.status ?? .upToDate, store)
    }

    private func check(_ outcome: (status: ReplayOutcome.Status, store: EventStore), projection: Projection) throws -> [TestFileError.Problem] {
        var failure: ProjectionError?
        if case .failed(let error) = outcome.status { failure = error }
        if let expected = expectedFailure {
            guard let failure else {
                let at = expected.atEvent.map { " at event \($0) (line \(events[$0 - 1].line))" } ?? ""
                let text = expected.containing.isEmpty ? "" : " with a message containing \(CanonicalJSON.string(.string(expected.containing)))"
                return [.init(line: expected.line, message: "expected the replay to fail\(at)\(text), but it succeeded")]
            }
            let atMatches = expected.atEvent.map { failure.seq == Int64($0) } ?? true
            guard !atMatches || !failure.description.contains(expected.containing) else { return [] }
            let at = expected.atEvent.map { " at event \($0) (line \(events[$0 - 1].line))" } ?? ""
            let text = expected.containing.isEmpty ? "" : " containing \(CanonicalJSON.string(.string(expected.containing)))"
            let actual = where_(failure)
            return [.init(line: expected.line, message: "expected a failure\(at)\(text), but it failed\(actual.isEmpty ? "" : " " + actual): \(failure)")]
        }
        if let failure {
            return [.init(line: line, message: "the replay failed \(where_(failure)): \(failure)")]
        }
        var states: [String: String] = [:]
        try outcome.store.forEachState(projection: projection.name) { states[$0] = $1 }
        var problems: [TestFileError.Problem] = []
        for expectation in expectations {
            guard let key = expectation.kind.key else { continue }
            let label = StateDiff.keyLabel(key)
            let stored = try states[key].map { try JSONParser.parse($0) }
            switch (expectation.kind, stored) {
            case (.absent, let state?):
                problems.append(.init(line: expectation.line, message: "\(label): expected no state, got \(StateDiff.show(state))"))
            case (.absent, nil):
                break
            case (.state, nil), (.includes, nil):
                let known = states.keys.sorted(by: CanonicalJSON.keyPrecedes).prefix(10).map { StateDiff.keyLabel($0) }
                let hint = known.isEmpty ? "no key has a state" : "keys with a state: " + known.joined(separator: ", ")
                problems.append(.init(line: expectation.line, message: "\(label): expected a state, got none (\(hint))"))
            case (.state(_, let value), let state?), (.includes(_, let value), let state?):
                let partial = if case .includes = expectation.kind { true } else { false }
                for difference in StateDiff.differences(expected: value, actual: state, path: label, partial: partial) {
                    problems.append(.init(line: expectation.line, message: difference))
                }
            case (.failure, _):
                break
            }
        }
        return problems
    }

    /// "at event N (line L)" for a failure that names its seq, else "".
    private func where_(_ failure: ProjectionError) -> String {
        guard let seq = failure.seq, seq >= 1, seq <= Int64(events.count) else { return "" }
        return "at event \(seq) (line \(events[Int(seq) - 1].line))"
    }
}

extension StateDiff {
    /// A key as the start of a path: as is when it is plain, else quoted.
    static func keyLabel(_ key: String) -> String {
        let plain = !key.isEmpty && key.allSatisfy { !$0.isWhitespace && $0 != "\"" && $0 != "." && $0 != "[" }
        return plain ? key : CanonicalJSON.string(.string(key))
    }
}
