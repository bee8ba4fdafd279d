/// `manifest.json`: what an export contains and what it was made from.
///
/// Written last, after every data file; signed (`manifest.sig`) when a key is
/// configured. An auditor checks the files against it, the signature against the
/// public key they were given, and — with the database — the chain head and the rows
/// against the store. See docs/exports.md for every field.
public struct ExportManifest: Sendable, Equatable {
    /// The manifest format's identifier.
    public static let formatIdentifier = "audit.export.v1"

    public enum Kind: String, Sendable {
        case events, query
    }

    /// The selection the export made. `fromSeq…toSeq` is the seq range it covers
    /// (empty when `toSeq < fromSeq`).
    public struct Selection: Sendable, Equatable {
        public var fromSeq: Int64
        public var toSeq: Int64
        public var asOf: Timestamp?
        public var knownAt: Timestamp?
        public var stream: String?
        public var type: String?
        public var incremental: Bool
    }

    /// A projection a query export read.
    public struct ProjectionUse: Sendable, Equatable {
        public var name: String
        public var version: Int64
        public var codeHash: String
        /// The last seq folded into its table when the query ran.
        public var position: Int64
    }

    public struct Query: Sendable, Equatable {
        public var name: String
        /// SHA-256 (hex) of the query's text, which is also exported as `query.sql`.
        public var sqlSHA256: String
        public var parameters: [String: String]
        public var projections: [ProjectionUse]
    }

    public struct File: Sendable, Equatable {
        public var path: String
        /// Data rows (a CSV header is not a row); nil for a file that is not data.
        public var rows: Int64?
        public var bytes: Int64
        public var sha256: String
    }

    /// The hash chain at the export's edges.
    public struct Chain: Sendable, Equatable {
        /// The last seq covered.
        public var seq: Int64
        /// The hash of event `seq` (hex): the chain head at the last seq covered.
        public var head: String
        /// The hash of event `fromSeq - 1` (hex; zeros before seq 1), from which the
        /// chain of a contiguous events export can be recomputed.
        public var before: String
    }

    public struct Previous: Sendable, Equatable {
        public var run: Int64
        /// SHA-256 (hex) of the previous run's manifest.json bytes.
        public var manifestSHA256: String
        /// The previous run's `chain.seq`, and the hash of the log at that seq when this
        /// run was made: equal to the previous run's `chain.head` unless the log was
        /// rewritten between the two runs. Nil in manifests of older builds.
        public var chainSeq: Int64?
        public var chainHead: String?

        public init(run: Int64, manifestSHA256: String, chainSeq: Int64? = nil, chainHead: String? = nil) {
            self.run = run
            self.manifestSHA256 = manifestSHA256
            self.chainSeq = chainSeq
            self.chainHead = chainHead
        }
    }

    public var name: String
    /// 1, 2, 3 … within the export's name.
    public var run: Int64
    public var createdAt: Timestamp
    public var engineVersion: String
    public var kind: Kind
    public var format: ExportFormat
    public var selection: Selection
    public var query: Query?
    public var files: [File]
    public var rows: Int64
    public var chain: Chain
    public var previous: Previous?
    /// The Ed25519 public key (base64) whose signature is in manifest.sig.
    public var publicKey: String?
    public var scheduledFor: Timestamp?
}

extension ExportManifest {
    /// `chain.seq` of a run covering `fromSeq…toSeq`: its last seq, or the seq before an
    /// empty range.
    static func chainSeq(fromSeq: Int64, toSeq: Int64) -> Int64 { max(toSeq, fromSeq - 1) }

    /// The manifest as JSON: keys sorted, two-space indented, one trailing newline.
    public var jsonText: String {
        var out: [UInt8] = []
        PrettyJSON.write(jsonValue, indent: 0, into: &out)
        out.append(0x0A)
        return String(decoding: out, as: UTF8.self)
    }

    var jsonValue: JSONValue {
        func text(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        func time(_ t: Timestamp?) -> JSONValue { t.map { .string($0.description) } ?? .null }
        var members: [JSONMember] = [
            JSONMember("format", .string(Self.formatIdentifier)),
            JSONMember("name", .string(name)),
            JSONMember("run", .int(run)),
            JSONMember("created_at", .string(createdAt.description)),
            JSONMember("engine", .object([JSONMember("name", .string("audit")), JSONMember("version", .string(engineVersion))])),
            JSONMember("kind", .string(kind.rawValue)),
            JSONMember("data_format", .string(format.rawValue)),
            JSONMember("selection", .object([
                JSONMember("from_seq", .int(selection.fromSeq)),
                JSONMember("to_seq", .int(selection.toSeq)),
                JSONMember("as_of", time(selection.asOf)),
                JSONMember("known_at", time(selection.knownAt)),
                JSONMember("stream", text(selection.stream)),
                JSONMember("type", text(selection.type)),
                JSONMember("incremental", .bool(selection.incremental)),
            ])),
            JSONMember("files", .array(files.map { file in
                .object([
                    JSONMember("path", .string(file.path)),
                    JSONMember("rows", file.rows.map(JSONValue.int) ?? .null),
                    JSONMember("bytes", .int(file.bytes)),
                    JSONMember("sha256", .string(file.sha256)),
                ])
            })),
            JSONMember("rows", .int(rows)),
            JSONMember("chain", .object([
                JSONMember("seq", .int(chain.seq)), JSONMember("head", .string(chain.head)), JSONMember("before", .string(chain.before)),
            ])),
            JSONMember("previous", previous.map { p in
                var members = [JSONMember("run", .int(p.run)), JSONMember("manifest_sha256", .string(p.manifestSHA256))]
                if let seq = p.chainSeq, let head = p.chainHead {
                    members += [JSONMember("chain_seq", .int(seq)), JSONMember("chain_head", .string(head))]
                }
                return .object(members)
            } ?? .null),
            JSONMember("signing", publicKey.map { key in
                .object([JSONMember("algorithm", .string("ed25519")), JSONMember("public_key", .string(key))])
            } ?? .null),
            JSONMember("scheduled_for", time(scheduledFor)),
        ]
        if let query {
            members.append(JSONMember("query", .object([
                JSONMember("name", .string(query.name)),
                JSONMember("sql_sha256", .string(query.sqlSHA256)),
                JSONMember("parameters", .object(query.parameters.sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
                JSONMember("projections", .array(query.projections.map { p in
                    .object([
                        JSONMember("name", .string(p.name)), JSONMember("version", .int(p.version)),
                        JSONMember("code_hash", .string(p.codeHash)), JSONMember("position", .int(p.position)),
                    ])
                })),
            ])))
        } else {
            members.append(JSONMember("query", .null))
        }
        return .object(members)
    }

    /// Reads a manifest.json.
    /// - Throws: `ExportError` (integrity) naming the field that is missing or wrong.
    public init(json text: [UInt8], source: String) throws {
        let value: JSONValue
        do {
            value = try text.withUnsafeBufferPointer { try JSONParser.parse($0) }
        } catch {
            throw ExportError("\(source): not valid JSON: \(error)", category: .integrity)
        }
        let reader = ManifestReader(source: source)
        guard try reader.string(value, "format") == Self.formatIdentifier else {
            throw ExportError("\(source): not an audit export manifest (format must be \"\(Self.formatIdentifier)\")", category: .integrity)
        }
        name = try reader.string(value, "name")
        run = try reader.int(value, "run")
        createdAt = try reader.time(value, "created_at")!
        engineVersion = try reader.string(try reader.object(value, "engine"), "version")
        guard let kind = Kind(rawValue: try reader.string(value, "kind")) else { throw reader.fail("kind", "must be events or query") }
        self.kind = kind
        guard let format = ExportFormat(rawValue: try reader.string(value, "data_format")) else { throw reader.fail("data_format", "must be jsonl or csv") }
        self.format = format
        let s = try reader.object(value, "selection")
        selection = Selection(
            fromSeq: try reader.int(s, "from_seq"), toSeq: try reader.int(s, "to_seq"), asOf: try reader.time(s, "as_of", optional: true),
            knownAt: try reader.time(s, "known_at", optional: true), stream: try reader.optionalString(s, "stream"),
            type: try reader.optionalString(s, "type"), incremental: s["incremental"] == .bool(true))
        guard case .array(let fileValues)? = value["files"] else { throw reader.fail("files", "must be an array") }
        files = try fileValues.map { f in
            File(
                path: try reader.string(f, "path"), rows: f["rows"] == .null ? nil : try reader.int(f, "rows"),
                bytes: try reader.int(f, "bytes"), sha256: try reader.string(f, "sha256"))
        }
        rows = try reader.int(value, "rows")
        let c = try reader.object(value, "chain")
        chain = Chain(seq: try reader.int(c, "seq"), head: try reader.string(c, "head"), before: try reader.string(c, "before"))
        if let p = value["previous"], p != .null {
            previous = Previous(
                run: try reader.int(p, "run"), manifestSHA256: try reader.string(p, "manifest_sha256"),
                chainSeq: p["chain_seq"] == nil ? nil : try reader.int(p, "chain_seq"),
                chainHead: try reader.optionalString(p, "chain_head"))
        }
        if let signing = value["signing"], signing != .null {
            publicKey = try reader.string(signing, "public_key")
        }
        scheduledFor = try reader.time(value, "scheduled_for", optional: true)
        if let q = value["query"], q != .null {
            guard case .object(let parameters)? = q["parameters"] else { throw reader.fail("query.parameters", "must be an object") }
            guard case .array(let used)? = q["projections"] else { throw reader.fail("query.projections", "must be an array") }
            query = Query(
                name: try reader.string(q, "name"), sqlSHA256: try reader.string(q, "sql_sha256"),
                parameters: Dictionary(parameters.map { ($0.key, $0.value.stringValue ?? "") }, uniquingKeysWith: { a, _ in a }),
                projections: try used.map { p in
                    ProjectionUse(
                        name: try reader.string(p, "name"), version: try reader.int(p, "version"),
                        codeHash: try reader.string(p, "code_hash"), position: try reader.int(p, "position"))
                })
        }
    }
}

/// Reads manifest fields, naming the one that is wrong.
private struct ManifestReader {
    var source: String

    func fail(_ field: String, _ problem: String) -> ExportError {
        ExportError("\(source): \"\(field)\" \(problem)", category: .integrity)
    }
    func object(_ value: JSONValue, _ key: String) throws -> JSONValue {
        guard let v = value[key], case .object = v else { throw fail(key, "must be an object") }
        return v
    }
    func string(_ value: JSONValue, _ key: String) throws -> String {
        guard case .string(let s)? = value[key] else { throw fail(key, "must be a string") }
        return s
    }
    func optionalString(_ value: JSONValue, _ key: String) throws -> String? {
        switch value[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw fail(key, "must be a string or null")
        }
    }
    func int(_ value: JSONValue, _ key: String) throws -> Int64 {
        guard case .int(let n)? = value[key] else { throw fail(key, "must be an integer") }
        return n
    }
    func time(_ value: JSONValue, _ key: String, optional: Bool = false) throws -> Timestamp? {
        guard let text = try optionalString(value, key) else {
            if optional { return nil }
            throw fail(key, "must be a time")
        }
        do { return try Timestamp(rfc3339: text) } catch { throw fail(key, "is not a time: \(error)") }
    }
}

/// Canonical JSON (keys sorted by bytes) laid out for people: two-space indents.
enum PrettyJSON {
    static func write(_ value: JSONValue, indent: Int, into out: inout [UInt8]) {
        func pad(_ n: Int) { out.append(contentsOf: [UInt8](repeating: 0x20, count: n)) }
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out.append(contentsOf: "[\n".utf8)
            for (i, element) in elements.enumerated() {
                pad(indent + 2)
                write(element, indent: indent + 2, into: &out)
                out.append(contentsOf: (i == elements.count - 1 ? "\n" : ",\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let members) where !members.isEmpty:
            out.append(contentsOf: "{\n".utf8)
            let sorted = members.sorted { CanonicalJSON.keyPrecedes($0.key, $1.key) }
            for (i, member) in sorted.enumerated() {
                pad(indent + 2)
                CanonicalJSON.writeString(member.key, into: &out)
                out.append(contentsOf: ": ".utf8)
                write(member.value, indent: indent + 2, into: &out)
                out.append(contentsOf: (i == sorted.count - 1 ? "\n" : ",\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "}"))
        default:
            CanonicalJSON.write(value, into: &out)
        }
    }
}
