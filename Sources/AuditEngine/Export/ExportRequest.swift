/// The data file format of an export.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// One JSON object a line.
    case jsonl
    /// A header line, then RFC 4180 rows.
    case csv
}

/// What an export contains: raw events, or a saved query's result.
public enum ExportContent: Sendable {
    case events(EventExportSelection)
    case query(QuerySelection)
}

/// Which events an event export covers. Every condition given must hold.
public struct EventExportSelection: Sendable, Equatable {
    public var stream: String?
    public var type: String?
    /// Inclusive. With `incremental`, the range starts after the previous run instead.
    public var fromSeq: Int64?
    /// Inclusive; the export never goes past the head captured when it starts.
    public var toSeq: Int64?
    /// Business time: only events with `occurred_at <= asOf`.
    public var asOf: Timestamp?
    /// System time: only events with `recorded_at <= knownAt`.
    public var knownAt: Timestamp?

    public init(
        stream: String? = nil, type: String? = nil, fromSeq: Int64? = nil, toSeq: Int64? = nil, asOf: Timestamp? = nil,
        knownAt: Timestamp? = nil
    ) {
        self.stream = stream
        self.type = type
        self.fromSeq = fromSeq
        self.toSeq = toSeq
        self.asOf = asOf
        self.knownAt = knownAt
    }

    /// Whether the selected events are every event of a seq range, so that their hash
    /// chain can be recomputed from the export alone.
    var isContiguous: Bool { stream == nil && type == nil && asOf == nil }
}

/// A saved query to export.
public struct QuerySelection: Sendable {
    /// The saved query's name (`queries/NAME.sql`).
    public var name: String
    public var sql: String
    public var parameters: [String: String]
    public var asOf: Timestamp?
    public var knownAt: Timestamp?
    /// The workspace's projections: with `asOf`/`knownAt`, those the SQL reads are
    /// folded as they were at that time (the live tables are not used).
    public var projections: [Projection]
    /// Without a time: how the projections the SQL reads are brought up to date before
    /// it runs (by default folded forward, waiting at most 30 s for another replay), so
    /// that the manifest's positions equal its `chain.seq`.
    public var current = CatchUpOptions()

    public init(
        name: String, sql: String, parameters: [String: String] = [:], asOf: Timestamp? = nil, knownAt: Timestamp? = nil,
        projections: [Projection] = []
    ) {
        self.name = name
        self.sql = sql
        self.parameters = parameters
        self.asOf = asOf
        self.knownAt = knownAt
        self.projections = projections
    }
}

/// One export run: what to write, where, and how.
///
/// ```swift
/// var request = ExportRequest(name: "daily-events", content: .events(EventExportSelection()), destination: .folder("exports"))
/// request.incremental = true
/// request.signingKey = try SigningKey.load(file: "keys/export.key")
/// let result = try store.export(request)
/// ```
public struct ExportRequest: Sendable {
    /// Names the export's series: runs of the same name form a chain, and an
    /// incremental run continues from the last completed one. Letters, digits, `.`, `_`, `-`.
    public var name: String
    public var content: ExportContent
    public var format: ExportFormat
    /// Where the run's directory goes.
    public var destination: ExportDestination
    /// Continue from the last completed run of `name`: exactly the events recorded since.
    public var incremental: Bool
    public var signingKey: SigningKey?
    /// A data file is split after this many rows (`events-000001.jsonl`, `…-000002…`).
    public var maxRowsPerFile: Int
    /// The schedule slot this run is for, when the scheduler started it.
    public var scheduledFor: Timestamp?
    /// Called after every `progressEvery` rows with the rows written so far.
    public var progress: (@Sendable (Int64) -> Void)?
    public var progressEvery: Int64

    public init(
        name: String, content: ExportContent, format: ExportFormat = .jsonl, destination: ExportDestination, incremental: Bool = false,
        signingKey: SigningKey? = nil
    ) {
        self.name = name
        self.content = content
        self.format = format
        self.destination = destination
        self.incremental = incremental
        self.signingKey = signingKey
        self.maxRowsPerFile = 1_000_000
        self.scheduledFor = nil
        self.progress = nil
        self.progressEvery = 10_000
    }

    /// Whether `name` can name an export (it becomes part of file, lock and stream names).
    package static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { CharacterSetASCII.isNameCharacter($0) }
    }
}

enum CharacterSetASCII {
    static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "_" || c == "-"
    }
}

/// Where an export run writes its directory (which must not exist yet).
public enum ExportDestination: Sendable, Equatable {
    /// Exactly this directory.
    case directory(String)
    /// `FOLDER/NAME-RUN` (the run number with 6 digits, `daily-000042`), so that a
    /// series' runs sort in order.
    case folder(String)
}

/// What a completed export wrote.
public struct ExportResult: Sendable, Equatable {
    public var directory: String
    public var manifest: ExportManifest
    /// SHA-256 (hex) of manifest.json's bytes: what the next run's manifest names.
    public var manifestSHA256: String
}

/// An export that could not run or could not finish. Nothing was left that looks complete.
public struct ExportError: AuditFailure, Equatable {
    public var category: FailureCategory
    public var message: String
    /// The export was not started because another run of it holds its lock.
    public var isAlreadyRunning: Bool

    public init(_ message: String, category: FailureCategory = .failure, isAlreadyRunning: Bool = false) {
        self.message = message
        self.category = category
        self.isAlreadyRunning = isAlreadyRunning
    }

    public var description: String { message }
}
