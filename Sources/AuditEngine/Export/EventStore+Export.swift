import Crypto
import Foundation
import GRDB

extension EventStore {
    /// Writes one export: data files, `query.sql` for a query, then `manifest.sig` and
    /// `manifest.json` last, into a temporary directory beside `request.directory`,
    /// renamed into place only when complete.
    ///
    /// - Watermark: the head is captured before anything is read, and the export covers
    ///   nothing after it. An incremental run covers exactly the seqs after its
    ///   previous completed run's, so consecutive runs have no gap and no overlap.
    /// - Crash safety: a killed export leaves only a `.NAME.partial-…` directory, which
    ///   the next run of the same export removes; the watermark advances only in the
    ///   transaction that records the run as completed, after the rename.
    /// - Audit trail: the outcome is appended to the log, stream `audit-export-NAME`,
    ///   type `ExportCompleted` or `ExportFailed`.
    /// - One at a time: a second run of the same export fails at once (`DatabaseLock`).
    public func export(_ request: ExportRequest) throws -> ExportResult {
        if case .query(let q) = request.content, !SavedQuery.isValidName(q.name) {
            throw ExportError(SavedQuery.invalidNameMessage(q.name), category: .invalidInput)
        }
        guard ExportRequest.isValidName(request.name) else {
            throw ExportError(
                "invalid export name \"\(request.name)\": use letters, digits, '.', '_' and '-' (at most 128 bytes, not starting with '.')",
                category: .invalidInput)
        }
        let (lock, holder) = try DatabaseLock.attempt(databasePath: path, name: "export-" + request.name)
        guard let lock else {
            throw ExportError("export \(request.name) is already running on \(path)\(holder.isEmpty ? "" : " (\(holder))"); it was not started twice", isAlreadyRunning: true)
        }
        defer { withExtendedLifetime(lock) {} }
        try recoverExports(name: request.name)
        if case .query(let q) = request.content, q.asOf == nil, q.knownAt == nil {
            // Before the head is captured: the tables read are then at it (DECISIONS 14).
            let source = "queries/\(q.name).sql"
            _ = try catchUp(projectionsRead(sql: q.sql, source: source, folder: q.current.folder), options: q.current)
        }
        return try ExportJob(store: self, request: request).run()
    }
}

/// One export run, from capture to the completed record.
private struct ExportJob {
    let store: EventStore
    let request: ExportRequest

    /// The run's directory, as an absolute path.
    func directory(run: Int64) -> String {
        let path: String
        switch request.destination {
        case .directory(let exact): path = exact
        case .folder(let folder): path = folder + "/" + request.name + "-" + String(format: "%06lld", run)
        }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// What the run covers, captured in one read transaction before any row is read.
    struct Capture {
        var fromSeq: Int64
        var toSeq: Int64
        var head: [UInt8]
        var before: [UInt8]
        var previous: ExportRunRecord?
        /// The previous run's `chain.seq` and the log's hash there now (see
        /// `ExportManifest.Previous`).
        var previousChain: (seq: Int64, head: [UInt8])?
        /// The head when captured (`toSeq` may end before it).
        var headSeq: Int64
    }

    var selectionIdentity: String {
        switch request.content {
        case .events(let s):
            return CanonicalJSON.string(.object([
                JSONMember("kind", .string("events")), JSONMember("format", .string(request.format.rawValue)),
                JSONMember("stream", s.stream.map(JSONValue.string) ?? .null), JSONMember("type", s.type.map(JSONValue.string) ?? .null),
            ]))
        case .query(let q):
            return CanonicalJSON.string(.object([
                JSONMember("kind", .string("query")), JSONMember("format", .string(request.format.rawValue)),
                JSONMember("name", .string(q.name)),
            ]))
        }
    }

    func run() throws -> ExportResult {
        let capture = try self.capture()
        let run = (capture.previous?.run ?? 0) + 1
        let directory = directory(run: run)
        if FileManager.default.fileExists(atPath: directory) {
            throw ExportError("\(directory) already exists: an export writes a new directory (choose another, or remove it)", category: .invalidInput)
        }
        let parent = (directory as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw ExportError("cannot create \(parent): \(error.localizedDescription)")
        }
        let partial = parent + "/." + (directory as NSString).lastPathComponent + ".partial-" + String(UUID().uuidString.prefix(8)).lowercased()
        let started = Timestamp.now()
        let id = try store.writeTransaction { db in
            try ExportRuns.insertStarted(db, ExportRunRecord(
                id: 0, name: request.name, run: run, status: .started, incremental: request.incremental, selection: selectionIdentity,
                directory: directory, partial: partial, fromSeq: capture.fromSeq, toSeq: capture.toSeq, rows: nil, manifestSHA256: nil,
                scheduledFor: request.scheduledFor, startedAt: started, finishedAt: nil, error: nil))
        }
        var renamed = false
        do {
            let manifest = try write(into: partial, capture: capture, run: run, createdAt: started)
            let manifestBytes = Array(manifest.jsonText.utf8)
            let manifestHash = Hex.encode(Array(SHA256.hash(data: manifestBytes)))
            if let key = request.signingKey {
                let signature = try key.sign(manifestBytes)
                try ExportFileWriter.writeFile(partial + "/manifest.sig", Array((Data(signature).base64EncodedString() + "\n").utf8))
            }
            try ExportFileWriter.writeFile(partial + "/manifest.json", manifestBytes)
            ExportFileWriter.syncDirectory(partial)
            try store.writeTransaction { db in try ExportRuns.markPending(db, id: id, rows: manifest.rows, manifestSHA256: manifestHash) }
            guard rename(partial, directory) == 0 else {
                throw ExportError("cannot rename \(partial) to \(directory): \(DiskFull.reason(errno))")
            }
            renamed = true
            ExportFileWriter.syncDirectory(parent)
            try store.writeTransaction { db in
                try ExportRuns.finish(db, id: id, status: .completed)
                if case .query(let q) = request.content {
                    // The text of a completed run, so that `--as-reported` reruns the text
                    // in use at a time (`QueryTexts`): after the run's chain.seq, like its outcome.
                    try QueryTexts.record(db, store: store, name: q.name, text: q.sql, path: "queries/\(q.name).sql", actor: "audit export")
                }
                try store.appendExportEvent(db, name: request.name, type: "ExportCompleted", data: [
                    JSONMember("run", .int(run)), JSONMember("directory", .string(directory)),
                    JSONMember("manifest_sha256", .string(manifestHash)), JSONMember("from_seq", .int(capture.fromSeq)),
                    JSONMember("to_seq", .int(capture.toSeq)), JSONMember("rows", .int(manifest.rows)),
                    JSONMember("files", .int(Int64(manifest.files.count))), JSONMember("incremental", .bool(request.incremental)),
                    JSONMember("signed", .bool(request.signingKey != nil)),
                    JSONMember("scheduled_for", request.scheduledFor.map { .string($0.description) } ?? .null),
                ])
            }
            return ExportResult(directory: directory, manifest: manifest, manifestSHA256: manifestHash)
        } catch {
            // After the rename the export is complete on disk: the next run adopts it.
            if !renamed {
                try? FileManager.default.removeItem(atPath: partial)
                try? store.writeTransaction { db in
                    try ExportRuns.finish(db, id: id, status: .failed, error: "\(error)")
                    try store.appendExportEvent(db, name: request.name, type: "ExportFailed", data: [
                        JSONMember("run", .int(run)), JSONMember("directory", .string(directory)), JSONMember("error", .string("\(error)")),
                        JSONMember("from_seq", .int(capture.fromSeq)), JSONMember("to_seq", .int(capture.toSeq)),
                        JSONMember("scheduled_for", request.scheduledFor.map { .string($0.description) } ?? .null),
                    ])
                }
            }
            throw error
        }
    }

    private func capture() throws -> Capture {
        try store.readTransaction { db in
            let chainHead = try ChainHead.forReading(db)
            let head = chainHead.seq
            let previous = try ExportRuns.lastCompleted(db, name: request.name)
            var from: Int64 = 1
            var to = head
            switch request.content {
            case .events(let s):
                if request.incremental {
                    if s.fromSeq != nil || s.toSeq != nil || s.asOf != nil || s.knownAt != nil {
                        throw ExportError(
                            "export \(request.name): an incremental export covers the events recorded since its previous run; it takes no --from-seq, --to-seq, --as-of or --known-at",
                            category: .invalidInput)
                    }
                    if let previous {
                        guard previous.incremental, previous.selection == selectionIdentity else {
                            throw ExportError(
                                "export \(request.name): its previous run (\(previous.run)) selected \(previous.incremental ? previous.selection : "a one-shot range"), this one \(selectionIdentity); an incremental series keeps its selection (use another --name)",
                                category: .invalidInput)
                        }
                        from = previous.toSeq + 1
                    }
                } else {
                    if previous?.incremental == true {
                        throw ExportError(
                            "export \(request.name) is incremental (its run \(previous!.run) was); run it with --incremental, or give a one-shot export another --name",
                            category: .invalidInput)
                    }
                    from = max(1, s.fromSeq ?? 1)
                    if let toSeq = s.toSeq { to = min(to, toSeq) }
                    if let knownAt = s.knownAt { to = min(to, try EventFilter.lastSeq(knownAt: knownAt, db)) }
                }
            case .query(let q):
                if let knownAt = q.knownAt { to = min(to, try EventFilter.lastSeq(knownAt: knownAt, db)) }
                if request.incremental {
                    throw ExportError(
                        "export \(request.name): a query's result is a whole table, not a range of events, so it cannot be incremental; export it whole on each run",
                        category: .invalidInput)
                }
            }
            func hash(at seq: Int64) throws -> [UInt8] {
                guard seq > 0 else { return EventHash.genesis }
                return [UInt8](try Data.fetchOne(db, sql: "SELECT hash FROM events WHERE seq = ?", arguments: [seq]) ?? Data())
            }
            let last = max(to, from - 1)
            let previousChain = try previous.map { p in
                let seq = ExportManifest.chainSeq(fromSeq: p.fromSeq, toSeq: p.toSeq)
                return (seq, try hash(at: seq))
            }
            return Capture(
                fromSeq: from, toSeq: to, head: try hash(at: last), before: try hash(at: min(from - 1, last)), previous: previous,
                previousChain: previousChain, headSeq: head)
        }
    }

    /// Writes the data files into `partial` and returns the manifest describing them.
    private func write(into partial: String, capture: Capture, run: Int64, createdAt: Timestamp) throws -> ExportManifest {
        var query: ExportManifest.Query?
        var files: [ExportManifest.File] = []
        var selection = ExportManifest.Selection(
            fromSeq: capture.fromSeq, toSeq: capture.toSeq, asOf: nil, knownAt: nil, stream: nil, type: nil, incremental: request.incremental)
        let progress = request.progress
        let every = max(1, request.progressEvery)
        switch request.content {
        case .events(let s):
            selection.asOf = s.asOf
            selection.knownAt = s.knownAt
            selection.stream = s.stream
            selection.type = s.type
            try makeDirectory(partial)
            let writer = ExportFileWriter(
                directory: partial, base: "events", format: request.format,
                header: request.format == .csv ? CSVText.record(ExportRows.eventColumns) : nil, maxRows: request.maxRowsPerFile)
            if capture.toSeq >= capture.fromSeq {
                let filter = EventFilter(stream: s.stream, type: s.type, fromSeq: capture.fromSeq, toSeq: capture.toSeq, asOf: s.asOf)
                try store.forEachEvent(filter) { event in
                    try writer.row(ExportRows.event(event, format: request.format))
                    if writer.rows % every == 0 { progress?(writer.rows) }
                }
            }
            try writer.finish()
            files = writer.files
        case .query(let q):
            selection.asOf = q.asOf
            selection.knownAt = q.knownAt
            (files, query) = try writeQuery(q, into: partial, capture: capture)
        }
        return ExportManifest(
            name: request.name, run: run, createdAt: createdAt, engineVersion: EngineVersion.current,
            kind: { if case .query = request.content { return .query } else { return .events } }(), format: request.format,
            selection: selection, query: query, files: files, rows: files.reduce(0) { $0 + ($1.rows ?? 0) },
            chain: ExportManifest.Chain(
                seq: ExportManifest.chainSeq(fromSeq: capture.fromSeq, toSeq: capture.toSeq), head: Hex.encode(capture.head),
                before: Hex.encode(capture.before)),
            previous: capture.previous.map {
                ExportManifest.Previous(
                    run: $0.run, manifestSHA256: $0.manifestSHA256 ?? "", chainSeq: capture.previousChain?.seq,
                    chainHead: capture.previousChain.map { Hex.encode($0.head) })
            },
            publicKey: request.signingKey?.publicKeyBase64, scheduledFor: request.scheduledFor)
    }

    /// Runs the query and writes its result, retrying when a replay moved a projection
    /// (or an append moved the head) while it ran, so that the recorded positions are
    /// the ones the result reflects.
    private func writeQuery(_ q: QuerySelection, into partial: String, capture: Capture) throws -> ([ExportManifest.File], ExportManifest.Query) {
        let tables = ExportJobIdentifiers.identifiers(in: q.sql)
        let current = q.asOf == nil && q.knownAt == nil
        for _ in 0..<5 {
            var before = try usedProjections(tables, q, capture: capture)
            if current, before.contains(where: { $0.position < capture.toSeq }) {
                // An append came between the catch-up and the capture: fold it too.
                _ = try store.catchUp(before.map(\.name), options: q.current)
                before = try usedProjections(tables, q, capture: capture)
            }
            try? FileManager.default.removeItem(atPath: partial)
            try makeDirectory(partial)
            var columns: [String] = []
            var writer: ExportFileWriter?
            try store.runExportQuery(
                sql: q.sql, parameters: q.parameters, asOf: q.asOf, knownAt: q.knownAt, projections: q.projections,
                source: "queries/\(q.name).sql",
                header: { names in
                    columns = names
                    writer = ExportFileWriter(
                        directory: partial, base: "result", format: request.format,
                        header: request.format == .csv ? CSVText.record(names) : nil, maxRows: request.maxRowsPerFile)
                },
                row: { values in
                    try writer!.row(ExportRows.result(columns: columns, values: values, format: request.format))
                })
            guard let writer else { throw ExportError("queries/\(q.name).sql: the query returned no columns", category: .invalidInput) }
            try writer.finish()
            try writer.write(name: "query.sql", contents: q.sql)
            let after = try usedProjections(tables, q, capture: capture)
            try writeSources(after, q, writer: writer)
            if before == after, try store.head().seq == capture.headSeq {
                let info = ExportManifest.Query(
                    name: q.name, sqlSHA256: Hex.encode(Array(SHA256.hash(data: Array(q.sql.utf8)))), parameters: q.parameters,
                    projections: after)
                return (writer.files, info)
            }
        }
        throw ExportError("export \(request.name): the projections or the log kept changing while the query ran (5 tries); run it again when replays and appends are quieter")
    }

    /// The projections the query reads: with a time option, the workspace's, folded up
    /// to the export's last seq; else the live tables, at their positions.
    private func usedProjections(_ identifiers: Set<String>, _ q: QuerySelection, capture: Capture) throws -> [ExportManifest.ProjectionUse] {
        if q.asOf != nil || q.knownAt != nil {
            return q.projections.filter { identifiers.contains($0.name.lowercased()) }.sorted { $0.name < $1.name }.map {
                ExportManifest.ProjectionUse(name: $0.name, version: $0.version, codeHash: $0.codeHash, position: capture.toSeq)
            }
        }
        let live = try store.projectionRecords().live
        return live.values.filter { identifiers.contains($0.name.lowercased()) }.sorted { $0.name < $1.name }.map {
            ExportManifest.ProjectionUse(name: $0.name, version: $0.version, codeHash: $0.codeHash, position: $0.position)
        }
    }

    /// The code of each projection the query read, so that an auditor can rerun it
    /// offline: each file of its code (script and lib modules) as `code--NAME--PATH`,
    /// PATH's `/` written `--` (export files are plain names), listed in the manifest
    /// like every file. For live tables, the code of the build that made them (a table
    /// built before the code history has none to give); with a time, the code folded.
    private func writeSources(_ used: [ExportManifest.ProjectionUse], _ q: QuerySelection, writer: ExportFileWriter) throws {
        for use in used {
            let code: ProjectionCode?
            if let folded = q.projections.first(where: { $0.name == use.name }), q.asOf != nil || q.knownAt != nil {
                code = folded.code
            } else {
                code = try store.readTransaction { db in
                    try CodeHistory.build(db, name: use.name, codeHash: use.codeHash).map { try CodeHistory.code(db, build: $0) }
                }
            }
            for file in code?.files ?? [] {
                try writer.write(name: Self.sourceFileName(projection: use.name, path: file.path), contents: file.text)
            }
        }
    }

    /// `code--NAME--PATH`, PATH's `/` written `--`.
    static func sourceFileName(projection: String, path: String) -> String {
        "code--\(projection)--" + path.replacingOccurrences(of: "/", with: "--")
    }

    private func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw ExportError("cannot create \(path): \(error.localizedDescription)")
        }
    }
}

extension EventStore {
    /// Appends an export's outcome to the log, in transaction `db`.
    func appendExportEvent(_ db: Database, name: String, type: String, data: [JSONMember]) throws {
        try appendSystemEvent(
            db, stream: ExportRuns.stream(name), type: type, data: .object([JSONMember("name", .string(name))] + data),
            actor: "audit export")
    }
}
