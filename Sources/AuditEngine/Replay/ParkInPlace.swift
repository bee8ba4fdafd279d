import GRDB

extension EventStore {
    /// Gives each key that `runs` parked in place during a pass (see
    /// `ProjectionRun.honourParked`) its last good state in the run's table: its state at
    /// the run's start (`origin`, else `base`) with its events before the failed one
    /// that `selection` selects folded again, alone; or no row, when it has none (it
    /// failed at its first event). Each such key is said on stderr, as a replay says a
    /// parked key (unless `reportsParks` is off), and is kept in `parkedHere`.
    ///
    /// The refold parks in place too: a point fold passes over late events until after
    /// its pass, so a key's refold there may meet one and fail earlier than the pass did
    /// (the point fold then folds that key again anyway, for its late event).
    ///
    /// A fold that parks in place cannot restart from a stored checkpoint, as a replay
    /// does: its table is its own (a temporal question's, a scratch catch-up's, `verify
    /// --projections`'), and nothing is stored. The fold went on past the failure with
    /// the key parked and its state in memory dropped (whatever the failed handler did
    /// to it), so every other key is as a replay that parked it would leave it.
    ///
    /// - Complexity: one pass from the run's start to the last failed seq, over the
    ///   parked keys' streams for a projection keyed by stream (else over every event of
    ///   its types), folding only the parked keys.
    func refoldParkedInPlace(
        _ runs: [ProjectionRun], selection: EventSelection, options: ReplayOptions, states: some StateDatabase
    ) throws {
        for run in runs where run.failure == nil {
            let requests = run.partitions.flatMap(\.parkedInPlace).sorted { $0.seq < $1.seq }
            guard !requests.isEmpty else { continue }
            for partition in run.partitions { partition.parkedInPlace = [] }
            let target = ReadModelTarget(
                projection: run.projection.name, kind: .temporary, columns: run.projection.columns,
                table: "audit_refold_" + run.target.table)
            try states.writeStates { db in
                try db.execute(sql: "DROP TABLE IF EXISTS main.\(target.quotedTable)")
                try db.execute(sql: target.createSQL)
            }
            let refold = try ProjectionRun(
                projection: run.projection, target: target, position: run.startPosition, limits: options.limits, parallel: 1)
            refold.base = run.origin ?? run.base
            refold.reportsParks = false
            let vm = refold.partitions[0].vm
            refold.partitions[0].parksInPlace = true
            vm.foldOnlyParked(true)  // only these keys, each up to its failed event
            vm.assumeNoStoredStates(false)
            for request in requests { try vm.park(key: request.key, firstSeq: request.seq) }
            // Each key starts from its state at the run's start, written out even when no
            // event changes it (the run's table may hold a later one).
            try states.readStates { db in
                for request in requests {
                    if let state = try refold.base.state(of: request.key, db) { try vm.setState(key: request.key, json: state) }
                }
            }
            var only = selection
            only.reportsSkipped = false
            if run.projection.key == .stream, only.stream == nil {
                only.streams = requests.map(\.key).filter { only.streams?.contains($0) ?? true }
            }
            var once = options
            once.checkpointSeconds = .infinity
            once.checkpointEvery = nil
            try pass([refold], end: requests.last!.seq, selection: only, options: once, states: states)
            if let failure = refold.failure { throw failure }
            for request in requests {
                let parked = refold.parkedHere[request.key] ?? request
                run.parkedHere[request.key] = parked
                if run.reportsParks {
                    logger.warning(
                        "projection \(run.projection.name): key \(parked.key) parked at seq \(parked.seq) in this answer (its own fold of the selected events; nothing is stored): \(parked.error)")
                }
            }
            if let changes = run.changes {
                // A question's fold keeps its states in memory: the keys' last good states
                // replace what it holds of them (none: the base's again).
                try states.writeStates { db in
                    let rows = try Row.fetchAll(db, sql: "SELECT key, state FROM main.\(target.quotedTable) ORDER BY key")
                    changes.replace(Set(requests.map(\.key)), with: rows.map { ($0["key"], $0["state"]) })
                    try db.execute(sql: "DROP TABLE main.\(target.quotedTable)")
                }
            } else {
                try states.writeStates { db in
                    for request in requests {
                        try db.execute(sql: "DELETE FROM main.\(run.target.quotedTable) WHERE key = ?", arguments: [request.key])
                        try db.execute(
                            sql: "INSERT INTO main.\(run.target.quotedTable) SELECT * FROM main.\(target.quotedTable) WHERE key = ?",
                            arguments: [request.key])
                    }
                    try db.execute(sql: "DROP TABLE main.\(target.quotedTable)")
                }
            }
            if run.cache != nil { run.rewritten.formUnion(requests.map(\.key)) }
        }
    }
}
