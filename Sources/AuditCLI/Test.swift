import ArgumentParser
import AuditEngine
import Foundation

extension AuditCommand {
    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the projections' tests: projections/NAME.test files (format: docs/testing.md).",
            discussion: """
                Each case's events go into a new temporary store, the engine's own \
                replay folds them, and the stored states are compared with the \
                case's `expect` lines. The database (--db) is not used.

                One line per case (PASS or FAIL, file:line, name), the differences \
                under a failed case, then a summary. Exit codes: 0 every case passed, \
                1 a case failed, 64 an unknown NAME or one without tests, 65 a test \
                file that cannot be read (FILE:LINE: reason on stderr) or a \
                projection that does not load.

                Examples:
                  audit test
                  audit test fine_balances order_totals
                """)

        @OptionGroup var workspace: WorkspaceOptions
        @Argument(help: "Test only these projections (default: every test file).", completion: WorkspaceCompletion.projections) var names: [String] = []

        func run() throws {
            let folder = workspace.projections
            try workspace.requireProjectionsFolder()
            var paths = ProjectionTestFile.paths(in: folder)
            if !names.isEmpty {
                let known = try KnownProjections(folder: folder, store: nil).inFolder
                for name in names where !known.contains(name) {
                    throw UsageError(KnownProjections.unknownMessage(name, known: known, folder: folder))
                }
                paths = paths.filter { names.contains(ProjectionTestFile.projectionName(ofPath: $0)) }
                for name in names where !paths.contains(where: { ProjectionTestFile.projectionName(ofPath: $0) == name }) {
                    throw UsageError("no tests for projection \(name): write \(folder)/\(name).test (see docs/testing.md)")
                }
            }

            var invalid = false
            var files: [ProjectionTestFile] = []
            var unreadable = 0
            for path in paths {
                do {
                    files.append(try ProjectionTestFile.load(path: path))
                } catch let error as TestFileError {
                    warn(error.description.split(separator: "\n").map { "audit: \($0)" }.joined(separator: "\n"))
                    invalid = true
                    unreadable += 1
                }
            }
            let needed = Set(files.map(\.projection))
            var projections: [String: Result<Projection, ProjectionError>] = [:]
            for result in try workspace.loadProjections() where needed.contains(projectionName(result)) {
                projections[projectionName(result)] = result
            }

            let scratch = NSTemporaryDirectory() + "audit-test-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            var out = Output()
            var passed = 0, failed = 0
            for file in files {
                let projection: Projection
                switch projections[file.projection] {
                case .success(let loaded)?:
                    projection = loaded
                case .failure(let error)?:
                    warn("audit: \(error)")
                    invalid = true
                    failed += file.cases.count
                    for testCase in file.cases {
                        try out.line("FAIL  \(file.path):\(testCase.line)  \(testCase.name)  (the projection does not load)")
                    }
                    continue
                case nil:
                    warn("audit: \(file.path):1: no projection \(file.projection) (\(folder)/\(file.projection).lua) for these tests")
                    invalid = true
                    continue
                }
                for testCase in file.cases {
                    let result = try testCase.run(projection, directory: scratch)
                    if result.passed {
                        passed += 1
                        try out.line("PASS  \(file.path):\(testCase.line)  \(testCase.name)")
                    } else {
                        failed += 1
                        try out.line("FAIL  \(file.path):\(testCase.line)  \(testCase.name)")
                        for problem in result.problems { try out.line("      \(file.path):\(problem.line): \(problem.message)") }
                    }
                    try out.flush()
                }
            }
            let total = passed + failed
            let notRun = unreadable == 0 ? "" : "; \(unreadable) file\(unreadable == 1 ? "" : "s") not run (cannot be read, see above)"
            try out.line("\(total) case\(total == 1 ? "" : "s") in \(files.count) file\(files.count == 1 ? "" : "s"): \(passed) passed, \(failed) failed\(notRun)")
            try out.flush()
            if paths.isEmpty { warn("audit: no test files in \(folder)/: write \(folder)/NAME.test for projection NAME (see docs/testing.md)") }
            if invalid { throw ExitCode(65) }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
