import Foundation
import Testing

/// What the install instructions say matches what the build needs: the Swift version
/// Package.swift's tools version requires, and the Debian packages CI installs to
/// build and run audit.
@Suite("Set-up instructions")
struct SetupDocsTests {
    static func read(_ path: String) throws -> String { try String(contentsOfFile: repositoryRoot + "/" + path, encoding: .utf8) }

    /// `6.1` from `// swift-tools-version:6.1`.
    static func toolsVersion() throws -> String {
        let first = try read("Package.swift").split(separator: "\n")[0]
        return String(try #require(first.split(separator: ":").last)).trimmingCharacters(in: .whitespaces)
    }

    static let buildPackages = ["liblua5.4-dev", "libsqlite3-dev", "pkg-config", "tzdata"]

    @Test("README, getting-started and library.md ask for the Swift version Package.swift needs", arguments: [
        "README.md", "docs/getting-started.md", "docs/library.md",
    ])
    func swiftVersion(file: String) throws {
        let version = try Self.toolsVersion()
        let text = try Self.read(file)
        #expect(text.contains("Swift \(version) or later"), "\(file) does not say Swift \(version) or later")
        #expect(!text.contains("with Swift 6 "), "\(file) still says Swift 6")
    }

    @Test("every apt-get install line of the docs and CI lists the packages the build needs", arguments: [
        "README.md", "docs/getting-started.md", ".ci/run",
    ])
    func packages(file: String) throws {
        let text = try Self.read(file)
        let lines = file == ".ci/run"
            ? [String(try #require(text.range(of: #"APT_PACKAGES=\([^)]*\)"#, options: .regularExpression).map { text[$0] }))]
            : text.split(separator: "\n").filter { $0.contains("apt-get install") && $0.contains("liblua5.4-dev") }.map(String.init)
        #expect(!lines.isEmpty)
        for line in lines {
            let words = Set(line.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "(" }).map(String.init))
            for package in Self.buildPackages { #expect(words.contains(package), "\(file): \(package) missing from: \(line)") }
        }
    }
}
