/// The lines a report draws over the boundaries of a series: one per numeric column
/// when the query returns at most one row per boundary; otherwise one per value of
/// the label column (`--series COL`), times each numeric column.
package struct ReportLines: Sendable, Equatable {
    package struct Line: Sendable, Equatable {
        package var name: String
        /// One per boundary; nil where the point has no row or the value is NULL.
        package var values: [Double?]
    }

    package var boundaries: [Timestamp]
    package var lines: [Line]
    /// The columns drawn (their name labels the value axis when there is one).
    package var valueColumns: [String]

    /// Lines a reader can still tell apart (each has its own marker shape).
    package static let maximumLines = 8

    /// - Parameters:
    ///   - columns: the series' columns, `as_of` first.
    ///   - rows: its rows, `as_of` first (the boundary's text).
    ///   - label: the column whose values label the lines (`--series`), if given.
    /// - Throws: `QueryError` (invalid input) when nothing can be drawn, or the rows of a
    ///   point cannot be told apart, saying what to change.
    package init(columns: [String], rows: [[SQLValue]], boundaries: [Timestamp], label: String?, source: String) throws {
        self.boundaries = boundaries
        let point = Dictionary(uniqueKeysWithValues: boundaries.enumerated().map { ($1.description, $0) })
        let labelIndex = try label.map { name in
            guard let index = columns.indices.dropFirst().first(where: { columns[$0].lowercased() == name.lowercased() }) else {
                throw QueryError(source: source, message: "--series \(name): the query has no such column (it returns \(columns.dropFirst().joined(separator: ", ")))")
            }
            return index
        }
        let numeric = columns.indices.dropFirst().filter { column in
            column != labelIndex && rows.contains { $0[column].number != nil }
                && rows.allSatisfy { $0[column].number != nil || $0[column] == .null }
        }
        guard !numeric.isEmpty else {
            throw QueryError(source: source, message: "the query returns no numeric column to draw (it returns \(columns.dropFirst().joined(separator: ", ")))")
        }
        valueColumns = numeric.map { columns[$0] }
        var lines: [Line] = []
        var lineIndex: [String: Int] = [:]
        var seen = Set<[String]>()
        for row in rows {
            guard case .text(let asOf) = row[0], let p = point[asOf] else { continue }
            let tag = labelIndex.map { row[$0] == .null ? "(null)" : row[$0].text }
            guard seen.insert([asOf, tag ?? ""]).inserted else {
                let message = labelIndex == nil
                    ? "the query returns more than one row as of \(asOf): name the column whose values label the lines with --series COL"
                    : "two rows as of \(asOf) have \(columns[labelIndex!]) = \(tag!): --series must name a column that tells the rows of one point apart"
                throw QueryError(source: source, message: message)
            }
            for column in numeric {
                let name = tag.map { numeric.count == 1 ? $0 : "\($0): \(columns[column])" } ?? columns[column]
                if lineIndex[name] == nil {
                    guard lines.count < Self.maximumLines else {
                        throw QueryError(source: source, message: "more than \(Self.maximumLines) lines to draw: too many to tell apart; select fewer columns or label values")
                    }
                    lineIndex[name] = lines.count
                    lines.append(Line(name: name, values: Array(repeating: nil, count: boundaries.count)))
                }
                lines[lineIndex[name]!].values[p] = row[column].number
            }
        }
        self.lines = lines
    }
}

extension SQLValue {
    /// The value of a number (nil for anything else).
    var number: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .real(let d): return d.isFinite ? d : nil
        default: return nil
        }
    }
}
