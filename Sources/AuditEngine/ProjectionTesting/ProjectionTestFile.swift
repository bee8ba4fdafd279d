import Foundation

/// A file of projection tests: `projections/NAME.test`, or `projections/NAME.WHAT.test`
/// for more files, holding cases for the projection `NAME`.
///
/// Each case gives events and expects states (or an error) after replaying exactly
/// those events into an empty store. The format is described in docs/testing.md:
///
/// ```
/// case a cancelled order keeps its total
/// {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
/// {"stream":"order-1","type":"OrderCancelled"}
/// expect order-1 {"customer":"c1","status":"cancelled","total":25}
/// ```
public struct ProjectionTestFile: Sendable {
    /// The file's path as given to the loader (used in messages).
    public var path: String
    /// The projection it tests: the file name up to its first dot.
    public var projection: String
    public var cases: [ProjectionTestCase]

    /// The extension of test files.
    public static let fileExtension = "test"
}

/// One case: events, then what the projection's states must be after them.
public struct ProjectionTestCase: Sendable {
    public var name: String
    /// The line of its `case` line.
    public var line: Int
    public var events: [Given]
    public var expectations: [ProjectionTestExpectation]

    /// One event of the case and the line it was given on. Its seq in the case's store
    /// is its position in the case: 1, 2, 3 …
    public struct Given: Sendable {
        public var line: Int
        public var event: NewEvent
    }

    /// The expected failure, when the case expects one.
    public var expectedFailure: (atEvent: Int?, containing: String, line: Int)? {
        for expectation in expectations {
            if case .failure(let at, let text) = expectation.kind { return (at, text, expectation.line) }
        }
        return nil
    }
}

/// One `expect` line.
public struct ProjectionTestExpectation: Sendable {
    public enum Kind: Sendable, Equatable {
        /// The key's state is exactly this.
        case state(key: String, JSONValue)
        /// The key's state has these fields with these values (nested objects likewise);
        /// other fields are not compared.
        case includes(key: String, JSONValue)
        /// No event reached the key: it has no state.
        case absent(key: String)
        /// Replaying fails (at the case's event N, when given) with a message containing
        /// this text.
        case failure(atEvent: Int?, containing: String)
    }

    public var line: Int
    public var kind: Kind
}

/// A test file that cannot be read as one: each problem with its line.
public struct TestFileError: AuditFailure, Equatable {
    public struct Problem: Sendable, Equatable {
        public var line: Int
        public var message: String
    }

    public var file: String
    public var problems: [Problem]

    public var category: FailureCategory { .invalidInput }

    /// `FILE:LINE: message`, one problem a line.
    public var description: String {
        problems.map { "\(file):\($0.line): \($0.message)" }.joined(separator: "\n")
    }
}

extension ProjectionTestFile {
    /// The test files in `directory` (`*.test`, not in subfolders), sorted by name.
    package static func paths(in directory: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { $0.hasSuffix("." + fileExtension) }.sorted().map { directory + "/" + $0 }
    }

    /// The projection a test file is for: its name up to the first dot
    /// (`fine_balances.payments.test` tests `fine_balances`).
    package static func projectionName(ofPath path: String) -> String {
        let file = URL(fileURLWithPath: path).lastPathComponent
        return String(file.prefix { $0 != "." })
    }

    /// Reads and parses a test file.
    ///
    /// - Throws: `TestFileError` naming each bad line; `StoreError` when it cannot be read.
    public static func load(path: String) throws -> ProjectionTestFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TestFileError(file: path, problems: [.init(line: 1, message: "cannot read it as UTF-8 text: \(error.localizedDescription)")])
        }
        return try parse(text, path: path)
    }
}
