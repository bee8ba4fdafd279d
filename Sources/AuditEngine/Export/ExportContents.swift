import Foundation
import GRDB

/// The rows of an export's data files, checked against its manifest and its selection,
/// and compared with the store.
struct ExportContents {
    let directory: String
    let manifest: ExportManifest
    private(set) var notes: [String] = []
    private(set) var chainRecomputed = false

    /// One data row: where it is and its text in the export's canonical row form.
    struct Row {
        var file: String
        var line: Int
        var text: String
        var fields: [String]
    }
    private var rows: [Row] = []

    init(directory: String, manifest: ExportManifest) {
        self.directory = directory
        self.manifest = manifest
    }

    /// Reads every data file; checks the row counts, and for events: seq order and
    /// range, the selection's filters, and the hash chain when the export is contiguous.
    mutating func check(problems: inout [String]) {
        var total: Int64 = 0
        for file in manifest.files where file.rows != nil {
            guard let data = FileManager.default.contents(atPath: directory + "/" + file.path) else { continue }
            let fileRows: [Row]
            do {
                fileRows = try Self.rows(of: [UInt8](data), file: file.path, format: manifest.format)
            } catch {
                problems.append("\(error)")
                continue
            }
            if Int64(fileRows.count) != file.rows {
                problems.append("\(file.path): \(fileRows.count) rows, but the manifest says \(file.rows!): rows were removed or added")
            }
            total += Int64(fileRows.count)
            rows += fileRows
        }
        if total != manifest.rows {
            problems.append("the data files hold \(total) rows, but the manifest says \(manifest.rows)")
        }
        if manifest.kind == .events { checkEvents(problems: &problems) }
        if manifest.kind == .query { checkPositions(problems: &problems) }
    }

    /// A query's result certifies the log up to `chain.seq`: every projection it read
    /// must have been at that seq (DECISIONS 14), not behind it (a stale table) or past it.
    private func checkPositions(problems: inout [String]) {
        for used in manifest.query?.projections ?? [] where used.position != manifest.chain.seq {
            problems.append(
                "projection \(used.name) was at seq \(used.position) when the query ran, not at the manifest's chain.seq \(manifest.chain.seq): "
                    + "the result does not reflect the log the manifest certifies")
        }
    }

    private mutating func checkEvents(problems: inout [String]) {
        let s = manifest.selection
        var previousSeq = s.fromSeq - 1
        var hasher = EventHash()
        var chain = Hex.decode(manifest.chain.before) ?? []
        let contiguous = s.stream == nil && s.type == nil && s.asOf == nil
        for row in rows {
            let where_ = "\(row.file):\(row.line)"
            guard row.fields.count == 10, let seq = Int64(row.fields[0]), let version = Int64(row.fields[3]) else {
                problems.append("\(where_): not an exported event (expected the 10 stored fields)")
                return
            }
            let f = row.fields
            if seq <= previousSeq { problems.append("\(where_): seq \(seq) is out of order (after seq \(previousSeq))"); return }
            if seq > s.toSeq { problems.append("\(where_): seq \(seq) is past the export's range (to_seq \(s.toSeq))"); return }
            if contiguous, seq != previousSeq + 1 {
                problems.append("\(where_): seq \(previousSeq + 1) is missing (the next exported event is seq \(seq)): an event was removed")
                return
            }
            if let stream = s.stream, f[2] != stream { problems.append("\(where_): seq \(seq) is of stream \(f[2]), outside the selection (stream \(stream))") }
            if let type = s.type, f[4] != type { problems.append("\(where_): seq \(seq) is of type \(f[4]), outside the selection (type \(type))") }
            if let asOf = s.asOf, f[5] > asOf.description { problems.append("\(where_): seq \(seq) occurred at \(f[5]), after the selection's as-of \(asOf)") }
            if contiguous {
                let hash = hasher.hash(
                    previous: chain, seq: seq, id: f[1], stream: f[2], version: version, type: f[4], occurredAt: f[5], recordedAt: f[6],
                    data: f[7], meta: f[8])
                if Hex.encode(hash) != f[9] {
                    problems.append("\(where_): seq \(seq) does not match its hash: the row was changed (or the one before it)")
                    return
                }
                chain = hash
            }
            previousSeq = seq
        }
        if contiguous {
            if previousSeq != max(s.toSeq, s.fromSeq - 1) {
                problems.append("the export ends at seq \(previousSeq), but its range ends at seq \(s.toSeq): events were removed from the end")
            } else if Hex.encode(chain) != manifest.chain.head {
                problems.append("the exported events' hash chain ends at \(Hex.encode(chain)), not at the manifest's chain head \(manifest.chain.head)")
            } else {
                chainRecomputed = true
            }
        } else {
            notes.append("the selection is filtered, so the hash chain cannot be recomputed from the export alone (give --db)")
        }
    }

    /// Compares with the store: the chain at the export's edges and, for events, the
    /// exact rows the selection gives now. Returns whether the rows were compared.
    mutating func compare(with store: EventStore, problems: inout [String]) -> Bool {
        let s = manifest.selection
        do {
            let (head, atEnd, atStart) = try store.readTransaction { db in
                let head = try ChainHead.seq(db)
                func hash(_ seq: Int64) throws -> String {
                    guard seq > 0 else { return Hex.encode(EventHash.genesis) }
                    return Hex.encode([UInt8](try Data.fetchOne(db, sql: "SELECT hash FROM events WHERE seq = ?", arguments: [seq]) ?? Data()))
                }
                return (head, try hash(manifest.chain.seq), try hash(max(0, s.fromSeq - 1)))
            }
            if head < manifest.chain.seq {
                problems.append("the database ends at seq \(head), before the export's last seq \(manifest.chain.seq): it is another database, or events were removed")
                return false
            }
            if atEnd != manifest.chain.head {
                problems.append("the chain head at seq \(manifest.chain.seq) is \(atEnd) in the database but \(manifest.chain.head) in the manifest: the database's history was rewritten, or this export is not from it")
            }
            if atStart != manifest.chain.before {
                problems.append("the chain hash before seq \(s.fromSeq) is \(atStart) in the database but \(manifest.chain.before) in the manifest")
            }
            // verify's checks of what is compared: a value stored in another class
            // reads back as the same text (so the rows would match) and is passed over
            // by a filter on its column (so a filtered selection would omit it).
            let through = manifest.kind == .events ? manifest.chain.seq : s.fromSeq - 1
            let findings = try store.checkStored(from: s.fromSeq, through: through)
            for problem in findings.failure.problems {
                problems.append("the database does not verify: \(problem.description) (run audit verify)")
            }
            let shown = findings.failure.problems.count
            if findings.total > shown { problems.append("the database does not verify: … and \(findings.total - shown) more problems at later seqs") }
            for (seq, note) in zip(findings.olderBuildSeqs, findings.olderBuildNotes) { notes.append("the database's seq \(seq): \(note)") }
            switch manifest.kind {
            case .events:
                var expected: [String] = []
                if s.toSeq >= s.fromSeq {
                    let filter = EventFilter(stream: s.stream, type: s.type, fromSeq: s.fromSeq, toSeq: s.toSeq, asOf: s.asOf)
                    try store.forEachEvent(filter) { expected.append(ExportRows.event($0, format: manifest.format)) }
                }
                compareRows(expected: expected, problems: &problems)
                return true
            case .query:
                return try compareQuery(with: store, problems: &problems)
            }
        } catch {
            problems.append("cannot compare with the database: \(error)")
            return false
        }
    }

    private func compareRows(expected: [String], problems: inout [String]) {
        let exported = rows.map { manifest.format == .csv ? CSVText.record($0.fields) : $0.text }
        for (i, row) in rows.enumerated() where i < expected.count && exported[i] != expected[i] {
            problems.append("\(row.file):\(row.line): this row differs from the database's event \(expected[i].prefix(40))…: it is not the selected event")
            return
        }
        if expected.count > rows.count {
            problems.append("the selection gives \(expected.count) events in the database but the export holds \(rows.count): events are missing from it")
        } else if expected.count < rows.count {
            let extra = rows[expected.count]
            problems.append("\(extra.file):\(extra.line): the export holds \(rows.count) rows but the selection gives \(expected.count) events: rows were added")
        }
    }

    private mutating func compareQuery(with store: EventStore, problems: inout [String]) throws -> Bool {
        guard let query = manifest.query else { return false }
        if manifest.selection.asOf != nil || manifest.selection.knownAt != nil {
            notes.append("a query at a past time is recomputed by folding the projections' code, which verify-export does not have, so the result was not recomputed (the chain head was checked)")
            return false
        }
        let live = try store.projectionRecords().live
        for used in query.projections {
            guard let now = live[used.name] else {
                notes.append("projection \(used.name) no longer exists, so the result was not recomputed")
                return false
            }
            if now.codeHash != used.codeHash || now.version != used.version || now.position != used.position {
                notes.append("projection \(used.name) has moved on since the export (now version \(now.version), position \(now.position), code \(now.codeHash.prefix(12))…), so the result was not recomputed")
                return false
            }
        }
        guard let sqlData = FileManager.default.contents(atPath: directory + "/query.sql") else { return false }
        let sql = String(decoding: sqlData, as: UTF8.self)
        if ExportJobIdentifiers.identifiers(in: sql).contains("events") {
            notes.append("the query reads the events table, which has grown since, so the result was not recomputed")
            return false
        }
        var expected: [String] = []
        var columns: [String] = []
        try store.runExportQuery(
            sql: sql, parameters: query.parameters, asOf: nil, knownAt: nil, projections: [], source: "query.sql", header: { columns = $0 }, row: { expected.append(ExportRows.result(columns: columns, values: $0, format: manifest.format)) })
        compareRows(expected: expected, problems: &problems)
        return true
    }

    /// The data rows of one file, with their line numbers (a CSV header is skipped).
    static func rows(of bytes: [UInt8], file: String, format: ExportFormat) throws -> [Row] {
        switch format {
        case .jsonl:
            var result: [Row] = []
            var line = 0
            for slice in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
                line += 1
                if slice.isEmpty { continue }
                let text = String(decoding: slice, as: UTF8.self)
                var fields: [String] = []
                // An event line is one level around data and meta, which nest as deep as ingest takes.
                if let value = try? JSONParser.parse(text, outerLevels: 1), case .object = value {
                    fields = jsonEventFields(value)
                }
                result.append(Row(file: file, line: line, text: text, fields: fields))
            }
            return result
        case .csv:
            let records = try CSVText.records(bytes, source: file)
            return records.enumerated().dropFirst().map { i, fields in
                Row(file: file, line: i + 1, text: CSVText.record(fields), fields: fields)
            }
        }
    }

    /// The 10 stored fields of an exported event line, as text in their stored form.
    private static func jsonEventFields(_ value: JSONValue) -> [String] {
        func text(_ key: String) -> String? {
            switch value[key] {
            case .string(let s)?: return s
            case .int(let n)?: return String(n)
            default: return nil
            }
        }
        guard let data = value["data"], let meta = value["meta"] else { return [] }
        let fields = ["seq", "id", "stream", "version", "type", "occurred_at", "recorded_at"].compactMap(text)
        guard fields.count == 7, let hash = text("hash") else { return [] }
        return fields + [CanonicalJSON.string(data), CanonicalJSON.string(meta), hash]
    }
}

/// The words of an SQL text, which name the tables it may read.
enum ExportJobIdentifiers {
    static func identifiers(in sql: String) -> Set<String> {
        Set(sql.lowercased().split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init))
    }
}
