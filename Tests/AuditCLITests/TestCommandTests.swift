import Foundation
import Testing

/// `audit test`: its output and its exit codes, as CI relies on them.
@Suite("audit test")
struct TestCommandTests {
    /// A workspace with the repository's order_totals.lua and the given test files.
    func workspace(_ tests: [String: String], projection: String? = nil) throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        let source = try projection ?? String(contentsOfFile: repositoryRoot + "/projections/order_totals.lua", encoding: .utf8)
        try source.write(toFile: dir.path + "/projections/order_totals.lua", atomically: true, encoding: .utf8)
        for (name, text) in tests {
            try text.write(toFile: dir.path + "/projections/" + name, atomically: true, encoding: .utf8)
        }
        return dir
    }

    static let passing = """
        case an order adds up
        {"stream":"order-1","type":"OrderPlaced","data":{"customer":"c1","amount":25}}
        {"stream":"order-1","type":"ItemAdded","data":{"qty":2,"price":5}}
        expect order-1 {"customer":"c1","status":"open","total":35}
        """

    @Test("the repository's own example projections pass their tests")
    func repositoryExamples() throws {
        let dir = TempDir()
        let result = try audit(["test", "--projections", repositoryRoot + "/projections"], in: dir.path)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(" 0 failed"))
        for name in ["fine_balances", "credit_collection_by_year", "permit_cases", "order_totals"] {
            #expect(result.stdout.contains("projections/\(name).test:"), "no tests ran for \(name)")
        }
    }

    @Test("all passing: one PASS line per case, a summary, exit 0")
    func pass() throws {
        let dir = try workspace(["order_totals.test": Self.passing])
        let result = try audit(["test"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "PASS  projections/order_totals.test:1  an order adds up\n1 case in 1 file: 1 passed, 0 failed\n")
    }

    @Test("a failing case: FAIL, the differing paths with file:line, exit 1")
    func fail() throws {
        let dir = try workspace(["order_totals.test": Self.passing.replacingOccurrences(of: "\"total\":35", with: "\"total\":30")])
        let result = try audit(["test"], in: dir.path)
        #expect(result.status == 1)
        #expect(result.stdout == """
            FAIL  projections/order_totals.test:1  an order adds up
                  projections/order_totals.test:4: order-1.total: expected 30, got 35
            1 case in 1 file: 0 passed, 1 failed

            """)
    }

    @Test("a malformed test file: FILE:LINE: reason on stderr, exit 65; the other files still run")
    func malformed() throws {
        let dir = try workspace([
            "order_totals.test": Self.passing,
            "order_totals.broken.test": "case x\n{\"stream\":\"a\",\"type\":\"T\",\"seq\":1}\nexpect a absent\n",
        ])
        let result = try audit(["test"], in: dir.path)
        #expect(result.status == 65)
        #expect(result.stderr.contains(#"audit: projections/order_totals.broken.test:2: "seq" is assigned by the store"#), "\(result.stderr)")
        #expect(result.stdout.contains("PASS  projections/order_totals.test:1"))
        // The summary counts the file that was not run.
        #expect(result.stdout.hasSuffix("1 case in 1 file: 1 passed, 0 failed; 1 file not run (cannot be read, see above)\n"), "\(result.stdout)")
    }

    @Test("a projection that does not load fails its cases and exits 65")
    func projectionDoesNotLoad() throws {
        let dir = try workspace(["order_totals.test": Self.passing], projection: "return {")
        let result = try audit(["test"], in: dir.path)
        #expect(result.status == 65)
        #expect(result.stdout.contains("FAIL  projections/order_totals.test:1  an order adds up  (the projection does not load)"))
        #expect(result.stderr.contains("order_totals.lua:1"), "\(result.stderr)")
    }

    @Test("names select projections; an unknown name or one without tests is a usage error (64)")
    func names() throws {
        let dir = try workspace(["order_totals.test": Self.passing])
        #expect(try audit(["test", "order_totals"], in: dir.path).status == 0)
        let unknown = try audit(["test", "nope"], in: dir.path)
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("no projection nope"))
        try "return { on = {} }".write(toFile: dir.path + "/projections/untested.lua", atomically: true, encoding: .utf8)
        let untested = try audit(["test", "untested"], in: dir.path)
        #expect(untested.status == 64)
        #expect(untested.stderr.contains("no tests for projection untested: write projections/untested.test"), "\(untested.stderr)")
    }

    @Test("a test file for a projection that does not exist exits 65")
    func orphanTestFile() throws {
        let dir = try workspace(["order_total.test": Self.passing])
        let result = try audit(["test"], in: dir.path)
        #expect(result.status == 65)
        #expect(result.stderr.contains("projections/order_total.test:1: no projection order_total"), "\(result.stderr)")
    }
}
