import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole hash chain.",
            discussion: """
                Prints {"ok":true,"events":N,"head":"<hex>"}, or names the first bad seq and exits 4.
                """)

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let report = try openStore(global).verify()
            var out = Output()
            try out.line(report.json)
            try out.flush()
        }
    }
}
