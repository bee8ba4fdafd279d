import CLuaSandbox
import Foundation
import GRDB
import GRDBSQLite

extension EventStore {
    /// Brings projections up to date: each from its checkpoint, or — when its code or
    /// version changed, or with `rebuild` — rebuilt from seq 1 in a table beside the
    /// live one, which it replaces atomically once it has caught up.
    ///
    /// All projections share one pass over the log. A projection that fails is marked
    /// failed and stops; the others go on. Killed at any moment, a replay resumes at the
    /// last checkpoint with no event applied twice or lost: states and position are
    /// saved in one transaction.
    public func replay(_ projections: [Projection], options: ReplayOptions = ReplayOptions()) throws -> [ReplayOutcome] {
        var outcomes: [String: ReplayOutcome] = [:]
        var runs: [ProjectionRun] = []
        var wasBuild: Set<String> = []
        try writeTransaction { db in
            for projection in projections {
                let live = try ReadModel.record(db, name: projection.name, build: false)
                if !options.rebuild, let live, live.codeHash == projection.codeHash, live.version == projection.version {
                    let target = ReadModelTarget(projection: projection.name, isBuild: false, columns: projection.columns)
                    runs.append(try ProjectionRun(projection: projection, target: target, position: live.position, limits: options.limits))
                    continue
                }
                let target = ReadModelTarget(projection: projection.name, isBuild: true, columns: projection.columns)
                let build = try ReadModel.record(db, name: projection.name, build: true)
                var position: Int64 = 0
                if !options.rebuild, let build, build.codeHash == projection.codeHash, build.version == projection.version,
                   try db.tableExists(target.table) {
                    position = build.position  // resume an interrupted build
                } else {
                    try ReadModel.startBuild(db, projection: projection, target: target)
                }
                wasBuild.insert(projection.name)
                runs.append(try ProjectionRun(projection: projection, target: target, position: position, limits: options.limits))
            }
        }

        // Passes until every build has caught up with the head (appends may arrive
        // while it builds), at most a few.
        for _ in 0..<4 {
            let head = try self.head().seq
            let end = min(options.toSeq ?? head, head)
            try pass(runs.filter { $0.isActive && $0.position < end }, end: end, options: options)
            let promotable = runs.filter { $0.isActive && $0.target.isBuild && $0.position >= head }
            if !promotable.isEmpty {
                try writeTransaction { db in
                    for run in promotable {
                        try ReadModel.promote(db, projection: run.projection, position: run.position)
                    }
                }
                for run in promotable {
                    outcomes[run.projection.name] = ReplayOutcome(
                        projection: run.projection.name, status: .rebuilt, position: run.position, eventsApplied: run.eventsApplied)
                }
                runs.removeAll { run in promotable.contains { $0 === run } }
            }
            if options.toSeq != nil || !runs.contains(where: { $0.isActive && $0.target.isBuild }) { break }
        }

        for run in runs {
            let status: ReplayOutcome.Status
            if let failure = run.failure {
                status = .failed(failure)
            } else if run.target.isBuild {
                status = .building
            } else {
                status = run.position == run.startPosition ? .upToDate : .updated
            }
            outcomes[run.projection.name] = ReplayOutcome(
                projection: run.projection.name, status: status, position: run.position, eventsApplied: run.eventsApplied)
        }
        return projections.compactMap { outcomes[$0.name] }
    }

    /// One pass over seq (min position, end]: every run sees each event after its own
    /// position, in seq order.
    private func pass(_ runs: [ProjectionRun], end: Int64, options: ReplayOptions) throws {
        guard var from = runs.map(\.position).min() else { return }
        let start = from
        let types = Set(runs.flatMap(\.projection.handledTypes)).sorted()
        let clock = ContinuousClock.now
        var eventsRead = 0
        var sinceCheckpoint = 0
        let placeholders = types.map { _ in "?" }.joined(separator: ", ")
        // `+type` keeps SQLite on the seq order of the primary key instead of the type index.
        let sql = """
            SELECT seq, id, stream, version, type, occurred_at, recorded_at, data, meta FROM events
            WHERE seq > ? AND seq <= ? AND +type IN (\(placeholders)) ORDER BY seq LIMIT ?
            """
        while from < end {
            var active = runs.filter(\.isActive)
            if active.isEmpty { return }
            var lastSeq = from
            var rows = 0
            if !types.isEmpty {
                try readTransaction { db in
                    let statement = try db.makeStatement(sql: sql)
                    let stmt = statement.sqliteStatement
                    sqlite3_bind_int64(stmt, 1, from)
                    sqlite3_bind_int64(stmt, 2, end)
                    for (i, type) in types.enumerated() {
                        sqlite3_bind_text(stmt, Int32(i + 3), type, -1, SQLITE_TRANSIENT_DESTRUCTOR)
                    }
                    sqlite3_bind_int64(stmt, Int32(types.count + 3), Int64(options.batchSize))
                    var event = avm_event()
                    while true {
                        let rc = sqlite3_step(stmt)
                        if rc == SQLITE_DONE { break }
                        guard rc == SQLITE_ROW else {
                            throw StoreError.storage("reading events failed: SQLite error \(rc): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                        }
                        EventStore.fill(&event, from: stmt)
                        for run in active where run.position < event.seq {
                            run.apply(&event, db: db)
                        }
                        if active.contains(where: { !$0.isActive }) { active = active.filter(\.isActive) }
                        lastSeq = event.seq
                        rows += 1
                    }
                }
            }
            let batchEnd = rows < options.batchSize ? end : lastSeq
            for run in active where run.isActive { run.position = max(run.position, batchEnd) }
            try recordFailures(runs)
            eventsRead += rows
            sinceCheckpoint += rows
            if sinceCheckpoint >= options.checkpointEvery || batchEnd >= end {
                let writers = runs.filter(\.isActive)
                try writeTransaction { db in
                    for run in writers { try run.checkpoint(db) }
                }
                for run in writers where run.isActive {
                    run.checkpointCommitted()
                    try run.trimMemory()
                }
                try recordFailures(writers)
                sinceCheckpoint = 0
            }
            from = batchEnd
            options.progress?(ReplayProgress(
                position: from, start: start, end: end, eventsRead: eventsRead,
                seconds: (ContinuousClock.now - clock).seconds))
        }
    }

    /// Saves the failure of every run that failed and has not been recorded yet.
    private func recordFailures(_ runs: [ProjectionRun]) throws {
        let failed = runs.filter { $0.failure != nil && !$0.failureRecorded }
        guard !failed.isEmpty else { return }
        try writeTransaction { db in
            for run in failed {
                try ReadModel.markFailed(db, target: run.target, error: run.failure!.description)
            }
        }
        for run in failed { run.failureRecorded = true }
    }

    /// Points `event` at the columns of the current row (valid until the next step).
    private static func fill(_ event: inout avm_event, from stmt: OpaquePointer?) {
        func text(_ column: Int32) -> (UnsafePointer<CChar>?, Int) {
            let pointer = sqlite3_column_text(stmt, column)
            return (UnsafeRawPointer(pointer)?.assumingMemoryBound(to: CChar.self), Int(sqlite3_column_bytes(stmt, column)))
        }
        event.seq = sqlite3_column_int64(stmt, 0)
        (event.id, event.id_len) = text(1)
        (event.stream, event.stream_len) = text(2)
        event.version = sqlite3_column_int64(stmt, 3)
        (event.type, event.type_len) = text(4)
        (event.occurred_at, event.occurred_at_len) = text(5)
        (event.recorded_at, event.recorded_at_len) = text(6)
        (event.data, event.data_len) = text(7)
        (event.meta, event.meta_len) = text(8)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
