import Foundation

/// An SVG line chart of `ReportLines` over `as_of`: dates along the bottom, values up
/// the side, light grid lines, one dark line per series with its own dash pattern and
/// a marker of its own shape and colour at each point (so it reads in print and
/// without colour). Markers are drawn last, in colours no line or text uses.
package enum ReportChart {
    package static let width = 960.0, height = 440.0
    static let left = 96.0, right = 24.0, top = 16.0, bottom = 64.0
    /// Marker fill colours, one per line.
    package static let colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    static let dashes = ["", "8 4", "2 3", "10 3 2 3"]
    static let shapes = ["circle", "square", "triangle", "diamond", "triangle-down", "cross", "star", "bar"]

    package static func svg(_ chart: ReportLines, unit: SeriesPoints.Unit) -> String {
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let times = chart.boundaries.map { Double($0.milliseconds) }
        let (t0, t1) = (times.first ?? 0, times.last ?? 0)
        func x(_ point: Int) -> Double { t1 > t0 ? left + (times[point] - t0) / (t1 - t0) * plotWidth : left + plotWidth / 2 }
        let values = chart.lines.flatMap { $0.values.compactMap { $0 } }
        let low = min(0, values.min() ?? 0), high = max(0, values.max() ?? 0)
        let ticks = Self.ticks(low: low, high: high > low ? high : low + 1)
        let (v0, v1) = (ticks.values.first!, ticks.values.last!)
        func y(_ v: Double) -> Double { top + plotHeight - (v - v0) / (v1 - v0) * plotHeight }

        var svg = #"<svg class="chart" viewBox="0 0 \#(f(width)) \#(f(height))" width="\#(f(width))" height="\#(f(height))" role="img" aria-label="chart over as_of">"#
        for v in ticks.values {
            svg += #"<line class="grid" x1="\#(f(left))" x2="\#(f(left + plotWidth))" y1="\#(f(y(v)))" y2="\#(f(y(v)))"/>"#
            svg += #"<text class="label y-tick" x="\#(f(left - 8))" y="\#(f(y(v) + 4))" text-anchor="end">\#(ticks.text(v))</text>"#
        }
        svg += #"<line class="axis" x1="\#(f(left))" x2="\#(f(left))" y1="\#(f(top))" y2="\#(f(top + plotHeight))"/>"#
        svg += #"<line class="axis" x1="\#(f(left))" x2="\#(f(left + plotWidth))" y1="\#(f(top + plotHeight))" y2="\#(f(top + plotHeight))"/>"#
        // At most one date label per 96 px, so that they never overlap.
        let every = max(1, Int((Double(times.count) / max(1, (plotWidth / 96).rounded(.down))).rounded(.up)))
        for point in stride(from: 0, to: times.count, by: every) {
            let px = x(point)
            svg += #"<line class="axis" x1="\#(f(px))" x2="\#(f(px))" y1="\#(f(top + plotHeight))" y2="\#(f(top + plotHeight + 5))"/>"#
            svg += #"<text class="label x-tick" x="\#(f(px))" y="\#(f(top + plotHeight + 20))" text-anchor="middle">\#(chart.boundaries[point].description.prefix(10))</text>"#
        }
        svg += #"<text class="label x-title" x="\#(f(left + plotWidth / 2))" y="\#(f(height - 12))" text-anchor="middle">as_of (UTC, the end of each \#(unit.rawValue))</text>"#
        let valueTitle = chart.valueColumns.count == 1 ? chart.valueColumns[0] : "value"
        svg += #"<text class="label y-title" transform="translate(18 \#(f(top + plotHeight / 2))) rotate(-90)" text-anchor="middle">\#(HTML.escape(valueTitle))</text>"#
        for (i, line) in chart.lines.enumerated() {
            // A line through consecutive points; a point without a value breaks it.
            var path = "", pen = false
            for (point, value) in line.values.enumerated() {
                guard let value else { pen = false; continue }
                path += (pen ? "L" : "M") + f(x(point)) + " " + f(y(value))
                pen = true
            }
            svg += #"<path class="line" d="\#(path)" stroke-dasharray="\#(dashes[i % dashes.count])"/>"#
        }
        for (i, line) in chart.lines.enumerated() {
            svg += #"<g class="markers" fill="\#(colours[i])">"#
            for (point, value) in line.values.enumerated() {
                guard let value else { continue }
                svg += marker(i, x: x(point), y: y(value), title: "\(line.name) as of \(chart.boundaries[point].description): \(ticks.text(value, exact: true))")
            }
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// A small SVG of line `i`'s dash and marker, for the legend.
    package static func swatch(_ i: Int) -> String {
        #"<svg class="swatch" width="44" height="16" viewBox="0 0 44 16"><path class="line" d="M2 8L42 8" stroke-dasharray="\#(dashes[i % dashes.count])"/><g fill="\#(colours[i])">\#(marker(i, x: 22, y: 8, title: nil))</g></svg>"#
    }

    /// Marker `i`'s shape, about 10 px across, centred on (x, y).
    static func marker(_ i: Int, x: Double, y: Double, title: String?) -> String {
        let r = 5.0
        let tip = title.map { "<title>\(HTML.escape($0))</title>" } ?? ""
        func polygon(_ points: [(Double, Double)]) -> String {
            #"<polygon class="marker" points="\#(points.map { f(x + $0.0) + "," + f(y + $0.1) }.joined(separator: " "))">\#(tip)</polygon>"#
        }
        switch shapes[i % shapes.count] {
        case "circle": return #"<circle class="marker" cx="\#(f(x))" cy="\#(f(y))" r="\#(f(r))">\#(tip)</circle>"#
        case "square": return polygon([(-r, -r), (r, -r), (r, r), (-r, r)])
        case "triangle": return polygon([(0, -r - 1), (r + 1, r), (-r - 1, r)])
        case "diamond": return polygon([(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)])
        case "triangle-down": return polygon([(-r - 1, -r), (r + 1, -r), (0, r + 1)])
        case "cross":
            let a = 2.0
            return polygon([(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a), (-r, a), (-r, -a), (-a, -a)])
        case "star":
            return polygon((0..<10).map { k in
                let angle = Double(k) * .pi / 5 - .pi / 2, radius = k % 2 == 0 ? r + 1.5 : r / 2
                return (radius * cos(angle), radius * sin(angle))
            })
        default: return polygon([(-r, -2.5), (r, -2.5), (r, 2.5), (-r, 2.5)])
        }
    }

    /// Round tick values covering [low, high], about five steps, and their labels.
    struct Ticks {
        var values: [Double]
        var decimals: Int

        func text(_ v: Double, exact: Bool = false) -> String {
            if exact, v != v.rounded() { return String(v) }
            return String(format: "%.\(exact ? 0 : decimals)f", v == 0 ? 0 : v)  // no "-0"
        }
    }

    static func ticks(low: Double, high: Double) -> Ticks {
        let raw = (high - low) / 5
        let exponent = Int(log10(raw).rounded(.down)), magnitude = pow(10, Double(exponent))
        let multiple = [1.0, 2, 2.5, 5, 10].first { $0 * magnitude >= raw } ?? 10
        let step = multiple * magnitude
        let first = (low / step).rounded(.down), last = (high / step).rounded(.up)
        let values = stride(from: first, through: max(last, first + 1), by: 1).map { $0 * step }
        let decimals = max(0, -exponent + (multiple == 2.5 ? 1 : 0) - (multiple == 10 ? 1 : 0))
        return Ticks(values: values, decimals: decimals)
    }

    /// A coordinate, with two decimals at most.
    static func f(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}

/// Text for HTML and SVG.
package enum HTML {
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
