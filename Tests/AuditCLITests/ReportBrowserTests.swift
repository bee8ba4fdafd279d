import Foundation
import Testing

/// `audit report` rendered by a real browser (Debian's chromium, headless): the points
/// drawn are counted in a screenshot, and the labels' boxes, reported by the page
/// itself, lie inside it without overlapping. In CI (env CI set) a missing chromium
/// fails the test; elsewhere the test does not run without one.
@Suite("Reports in a headless browser")
struct ReportBrowserTests {
    static let chromium: String? = ["chromium", "chromium-browser"].lazy.compactMap { name in
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }.first
    static let inCI = ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty } ?? false

    /// Orders in three regions, at mid-month of 2024: six a month in north, one in
    /// south, and twenty in west from July on, so that the three lines never meet.
    static func workspace() throws -> TempDir {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/projections", withIntermediateDirectories: true)
        try """
            return { on = { OrderPlaced = function(s, e) s.region = e.data.region end }, columns = { region = "text" } }
            """.write(toFile: dir.path + "/projections/regions.lua", atomically: true, encoding: .utf8)
        var lines: [String] = []
        for month in 1...12 {
            for (region, count) in [("north", 6), ("south", 1), ("west", month >= 7 ? 20 : 0)] {
                for n in 0..<count {
                    let id = "\(region)-\(month)-\(n)"
                    lines.append(#"{"id":"\#(id)","stream":"\#(id)","type":"OrderPlaced","occurred_at":"2024-\#(month < 10 ? "0" : "")\#(month)-15T12:00:00Z","data":{"region":"\#(region)"}}"#)
                }
            }
        }
        try #require(try audit(["init"], in: dir.path).status == 0)
        let ingest = try audit(["ingest", "-"], in: dir.path, stdin: lines.joined(separator: "\n") + "\n")
        try #require(ingest.status == 0, "\(ingest.stderr)")
        return dir
    }

    static func render(_ arguments: [String], in dir: String) throws -> CommandResult {
        let options = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                       "--no-first-run", "--user-data-dir=\(dir)/chromium-profile", "--window-size=1040,1200"]
        return try RunningCommand(options + arguments, in: dir, executable: try #require(chromium)).wait()
    }

    @Test("a report's points are drawn, one marker each, and its labels lie inside the page without overlapping",
          .enabled(if: chromium != nil || inCI, "chromium is not installed (CI installs it and fails without it)"))
    func rendered() throws {
        let chromium = Self.chromium
        try #require(chromium != nil, "chromium is not installed: .ci/run installs Debian's chromium; in CI the report test must run")
        let dir = try Self.workspace()
        let report = try audit([
            "report", "--sql", "SELECT region, count(*) AS orders FROM regions GROUP BY region ORDER BY region", "--series", "region",
            "--as-of-each", "month", "--from", "2024-01-01", "--to", "2024-12-31", "--out", "report.html", "--title", "Orders by region",
        ], in: dir.path)
        try #require(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOfFile: dir.path + "/report.html", encoding: .utf8)

        // The screenshot: one marker per point in each line's colour, plus its legend swatch.
        let shot = try Self.render(["--screenshot=\(dir.path)/report.png", "file://\(dir.path)/report.html"], in: dir.path)
        try #require(shot.status == 0, "\(shot.stderr)")
        let image = try PNGImage(path: dir.path + "/report.png")
        let colours = ["#d62728", "#1f77b4", "#2ca02c"]  // north, south, west: the order they first appear in
        #expect(colours.map { image.shapes(of: $0) } == [12 + 1, 12 + 1, 6 + 1])

        // A copy that reports its labels' boxes into the DOM.
        let probe = """
            <script>
            const box = e => { const r = e.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY]; };
            const labels = [...document.querySelectorAll('.label')].map(e => ({ kind: e.getAttribute('class'), text: e.textContent, box: box(e) }));
            const page = [document.documentElement.scrollWidth, document.documentElement.scrollHeight];
            const out = document.createElement('pre'); out.id = 'boxes'; out.textContent = JSON.stringify({ page, labels });
            document.body.appendChild(out);
            </script>
            """
        try html.replacingOccurrences(of: "</body>", with: probe + "</body>").write(toFile: dir.path + "/probe.html", atomically: true, encoding: .utf8)
        let dump = try Self.render(["--dump-dom", "file://\(dir.path)/probe.html"], in: dir.path)
        try #require(dump.status == 0, "\(dump.stderr)")
        let text = try #require(dump.stdout.range(of: "<pre id=\"boxes\">").flatMap { start in
            dump.stdout[start.upperBound...].range(of: "</pre>").map { String(dump.stdout[start.upperBound..<$0.lowerBound]) }
        }, "the probe wrote no boxes: \(dump.stdout.prefix(300))")
        let json = text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let page = try #require(parsed["page"] as? [Double])
        let labels = try #require(parsed["labels"] as? [[String: Any]]).map { ($0["kind"] as! String, $0["text"] as! String, $0["box"] as! [Double]) }
        func count(_ kind: String) -> Int { labels.filter { $0.0.contains(kind) }.count }
        #expect(count("x-tick") == 6, "twelve months, a date label every second one (at most one per 96 px)")
        #expect(count("y-tick") >= 3 && count("x-title") == 1 && count("y-title") == 1)
        #expect(labels.filter { $0.0.contains("legend") }.map(\.1) == ["north", "south", "west"])
        #expect(labels.contains { $0.1 == "2024-01-31" } && labels.contains { $0.1 == "orders" })
        for (kind, text, b) in labels {
            #expect(b[2] > b[0] && b[3] > b[1], "\(kind) \(text) is not drawn")
            #expect(b[0] >= 0 && b[1] >= 0 && b[2] <= page[0] && b[3] <= page[1], "\(kind) \(text) at \(b) lies outside the page \(page)")
        }
        for (i, a) in labels.enumerated() {
            for b in labels[(i + 1)...] {
                let overlap = min(a.2[2], b.2[2]) - max(a.2[0], b.2[0]) > 0.5 && min(a.2[3], b.2[3]) - max(a.2[1], b.2[1]) > 0.5
                #expect(!overlap, "\(a.0) \(a.1) at \(a.2) overlaps \(b.0) \(b.1) at \(b.2)")
            }
        }
    }
}
