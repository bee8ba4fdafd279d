/// The text of exported rows: the same forms as `audit events` and `audit query` print.
enum ExportRows {
    static let eventColumns = ["seq", "id", "stream", "version", "type", "occurred_at", "recorded_at", "data", "meta", "hash"]

    /// One event as a data row.
    static func event(_ e: StoredEvent, format: ExportFormat) -> String {
        switch format {
        case .jsonl: return e.jsonLine
        case .csv:
            return CSVText.record([
                String(e.seq), e.id, e.stream, String(e.version), e.type, e.occurredAt.description, e.recordedAt.description,
                e.data, e.meta, e.hashHex,
            ])
        }
    }

    /// One query result row as a data row.
    static func result(columns: [String], values: [SQLValue], format: ExportFormat) -> String {
        switch format {
        case .jsonl: return jsonObject(columns: columns, values: values)
        case .csv: return CSVText.record(values.map(\.text))
        }
    }

    /// `{"column":value,…}` in column order.
    static func jsonObject(columns: [String], values: [SQLValue]) -> String {
        "{" + zip(columns, values).map { column, value in SQLValue.text(column).json + ":" + value.json }.joined(separator: ",") + "}"
    }
}

/// RFC 4180 CSV.
package enum CSVText {
    /// One field: quoted when it holds a comma, quote, CR or LF.
    package static func field(_ text: String) -> String {
        if text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return text
    }

    /// One record's fields joined, without the line end.
    package static func record(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",")
    }

    /// The records of a CSV text (CRLF or LF line ends; quoted fields may span lines).
    /// - Throws: `ExportError` naming the line of an unterminated quote.
    static func records(_ bytes: [UInt8], source: String) throws -> [[String]] {
        var records: [[String]] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var line = 1
        var quoteLine = 0
        var i = 0
        var atFieldStart = true
        func endField() { fields.append(String(decoding: field, as: UTF8.self)); field.removeAll(keepingCapacity: true); atFieldStart = true }
        while i < bytes.count {
            let c = bytes[i]
            if quoted {
                if c == 0x22 {
                    if i + 1 < bytes.count, bytes[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                    quoted = false
                } else {
                    if c == 0x0A { line += 1 }
                    field.append(c)
                }
                i += 1
                continue
            }
            switch c {
            case 0x22 where atFieldStart:
                quoted = true
                quoteLine = line
                atFieldStart = false
            case 0x2C:
                endField()
            case 0x0D where i + 1 < bytes.count && bytes[i + 1] == 0x0A:
                break
            case 0x0A:
                endField()
                records.append(fields)
                fields.removeAll(keepingCapacity: true)
                line += 1
            default:
                field.append(c)
                atFieldStart = false
            }
            i += 1
        }
        if quoted { throw ExportError("\(source):\(quoteLine): a quoted field is never closed", category: .integrity) }
        if !field.isEmpty || !fields.isEmpty {
            endField()
            records.append(fields)
        }
        return records
    }
}
