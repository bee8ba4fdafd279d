import GRDB
import GRDBSQLite

/// The store's schema, created and upgraded by versioned migrations.
///
/// Migrations are append-only: a released migration is never edited, so a database
/// made by any older build opens in a newer one and is brought up to date. A database
/// carrying migrations this build does not know was made by a newer build and is
/// refused rather than misread.
enum Schema {
    /// The migrations, without progress reports.
    static let migrator = makeMigrator(progress: nil)

    /// The migrations; `progress` hears how far the long ones (v8's copy of the log)
    /// have come.
    static func makeMigrator(progress: (@Sendable (UpgradeProgress) -> Void)?) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()

        // v1: the log itself and the head of its hash chain.
        migrator.registerMigration("v1-events") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    seq         INTEGER PRIMARY KEY,
                    id          TEXT    NOT NULL UNIQUE,
                    stream      TEXT    NOT NULL,
                    version     INTEGER NOT NULL,
                    type        TEXT    NOT NULL,
                    occurred_at TEXT    NOT NULL,
                    recorded_at TEXT    NOT NULL,
                    data        TEXT    NOT NULL,
                    meta        TEXT    NOT NULL DEFAULT '{}',
                    hash        BLOB    NOT NULL,
                    UNIQUE (stream, version)
                );
                CREATE TABLE chain_head (
                    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
                    seq         INTEGER NOT NULL,
                    hash        BLOB    NOT NULL,
                    recorded_at TEXT    NOT NULL
                );
                INSERT INTO chain_head (singleton, seq, hash, recorded_at) VALUES (1, 0, zeroblob(32), '');
                """)
        }

        // v2: reading by type, by business time and by correlation id, and triggers
        // that refuse UPDATE and DELETE on stored events from any SQL client.
        //
        // Deliberately no index on recorded_at: it never decreases with seq, so the
        // events known at a time are a seq prefix found by binary search. And the
        // correlation index is a side table written only for events that carry a
        // correlation id, not an expression index evaluated on every insert. Both
        // measured: together they cost about a quarter of ingest throughput.
        migrator.registerMigration("v2-read-indexes") { db in
            try db.execute(sql: """
                CREATE INDEX events_by_type ON events (type, seq);
                CREATE INDEX events_by_occurred_at ON events (occurred_at);
                CREATE TABLE event_correlations (
                    correlation_id TEXT    NOT NULL,
                    seq            INTEGER NOT NULL,
                    PRIMARY KEY (correlation_id, seq)
                ) WITHOUT ROWID;
                CREATE TRIGGER events_are_not_updated BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'stored events are never updated: the log is append-only'); END;
                CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
                    BEGIN SELECT RAISE(ABORT, 'stored events are never deleted: the log is append-only'); END;
                """)
        }
        // v3: projections. `projections` describes each live read-model table (named
        // after the projection); `projection_builds` each rebuild in progress, whose
        // table is `NAME__build` until it replaces the live one.
        migrator.registerMigration("v3-projections") { db in
            try db.execute(sql: """
                CREATE TABLE projections (
                    name       TEXT PRIMARY KEY,
                    version    INTEGER NOT NULL,
                    code_hash  TEXT    NOT NULL,
                    position   INTEGER NOT NULL,
                    status     TEXT    NOT NULL,
                    error      TEXT,
                    updated_at TEXT    NOT NULL
                );
                CREATE TABLE projection_builds (
                    name       TEXT PRIMARY KEY,
                    version    INTEGER NOT NULL,
                    code_hash  TEXT    NOT NULL,
                    position   INTEGER NOT NULL,
                    status     TEXT    NOT NULL,
                    error      TEXT,
                    started_at TEXT    NOT NULL,
                    updated_at TEXT    NOT NULL
                );
                """)
        }
        // v4: snapshots, and how far in time each projection's table reaches.
        //
        // A snapshot is a projection's state at a checkpoint seq, for one chain: one
        // projection's code (name, version, code hash); code that differs never sees it.
        // Snapshots are stored as deltas: `snapshot_states` holds a row for a key at a
        // snapshot's seq only when the key changed since the chain's previous snapshot,
        // so a key's state at snapshot S is its row with the largest seq <= S. Each
        // snapshot row carries the digest of its delta, checked before use.
        //
        // max_occurred_at / max_recorded_at: the largest times of the events folded up
        // to a position, which decide the as-of / known-at questions a snapshot (or the
        // table) can answer.
        migrator.registerMigration("v4-snapshots") { db in
            try db.execute(sql: """
                ALTER TABLE projections ADD COLUMN max_occurred_at TEXT NOT NULL DEFAULT '';
                ALTER TABLE projections ADD COLUMN max_recorded_at TEXT NOT NULL DEFAULT '';
                ALTER TABLE projection_builds ADD COLUMN max_occurred_at TEXT NOT NULL DEFAULT '';
                ALTER TABLE projection_builds ADD COLUMN max_recorded_at TEXT NOT NULL DEFAULT '';
                CREATE TABLE snapshot_chains (
                    id         INTEGER PRIMARY KEY,
                    projection TEXT    NOT NULL,
                    version    INTEGER NOT NULL,
                    code_hash  TEXT    NOT NULL,
                    UNIQUE (projection, version, code_hash)
                );
                CREATE TABLE snapshots (
                    chain           INTEGER NOT NULL REFERENCES snapshot_chains (id),
                    seq             INTEGER NOT NULL,
                    max_occurred_at TEXT    NOT NULL,
                    max_recorded_at TEXT    NOT NULL,
                    keys            INTEGER NOT NULL,
                    delta_rows      INTEGER NOT NULL,
                    delta_bytes     INTEGER NOT NULL,
                    digest          TEXT    NOT NULL,
                    created_at      TEXT    NOT NULL,
                    milliseconds    INTEGER NOT NULL,
                    PRIMARY KEY (chain, seq)
                ) WITHOUT ROWID;
                CREATE TABLE snapshot_states (
                    chain INTEGER NOT NULL,
                    key   TEXT    NOT NULL,
                    seq   INTEGER NOT NULL,
                    state TEXT    NOT NULL,
                    PRIMARY KEY (chain, key, seq)
                ) WITHOUT ROWID;
                """)
            // Tables replayed before this migration: their events' largest times are not
            // known by type, so take them over the whole log up to the position (at
            // worst a snapshot is used for fewer questions than it could answer).
            for table in ["projections", "projection_builds"] {
                try db.execute(sql: """
                    UPDATE \(table) SET
                        max_occurred_at = coalesce((SELECT max(occurred_at) FROM events WHERE seq <= position), ''),
                        max_recorded_at = coalesce((SELECT recorded_at FROM events WHERE seq = position), '')
                    """)
            }
        }

        // v5: export runs. Each attempt of a named export is a row: `started` while it
        // writes, `pending` once its directory is complete but not yet renamed into
        // place, then `completed` or `failed`. An export's watermark is the `to_seq` of
        // its last completed run, so it advances only when an export has finished; a
        // crash leaves a `started`/`pending` row that the next run of that export
        // resolves (see `ExportRuns.recover`).
        migrator.registerMigration("v5-export-runs") { db in
            try db.execute(sql: """
                CREATE TABLE export_runs (
                    id              INTEGER PRIMARY KEY,
                    name            TEXT    NOT NULL,
                    run             INTEGER NOT NULL,
                    status          TEXT    NOT NULL,
                    incremental     INTEGER NOT NULL,
                    selection       TEXT    NOT NULL,
                    directory       TEXT    NOT NULL,
                    partial         TEXT    NOT NULL,
                    from_seq        INTEGER NOT NULL,
                    to_seq          INTEGER NOT NULL,
                    rows            INTEGER,
                    manifest_sha256 TEXT,
                    scheduled_for   TEXT,
                    started_at      TEXT    NOT NULL,
                    finished_at     TEXT,
                    error           TEXT
                );
                CREATE INDEX export_runs_by_name ON export_runs (name, id);
                CREATE UNIQUE INDEX export_runs_completed ON export_runs (name, run) WHERE status = 'completed';
                """)
        }

        // v6: snapshot rows ordered by (chain, seq, key) instead of (chain, key, seq).
        //
        // Keyed by key first, every new delta landed on pages all over the table, so
        // taking one rewrote most of the table (measured: from 0.16 s to 1.1 s per
        // snapshot as a 2M-event replay went on). Keyed by seq first, a delta is
        // written as one run of new pages, and checking the snapshots up to S reads
        // one contiguous range. States at S are then merged over the chain's deltas
        // (`SnapshotStates`).
        migrator.registerMigration("v6-snapshot-rows-by-seq") { db in
            try db.execute(sql: """
                CREATE TABLE snapshot_states_by_seq (
                    chain INTEGER NOT NULL,
                    seq   INTEGER NOT NULL,
                    key   TEXT    NOT NULL,
                    state TEXT    NOT NULL,
                    PRIMARY KEY (chain, seq, key)
                ) WITHOUT ROWID;
                INSERT INTO snapshot_states_by_seq (chain, seq, key, state)
                    SELECT chain, seq, key, state FROM snapshot_states ORDER BY chain, seq, key;
                DROP TABLE snapshot_states;
                ALTER TABLE snapshot_states_by_seq RENAME TO snapshot_states;
                """)
        }

        // v7: snapshot deltas stored in chunks of records instead of a row per state.
        //
        // A row per state cost a B-tree insert per state to take a snapshot and a step
        // per state to read one: 0.18 s per 165,000-state delta to write, and most of a
        // temporal question's time to check and merge (measured). A chunk packs some
        // sixty (key, state) records in key order (`SnapshotChunks`); a snapshot names
        // its delta, so that thinning writes the merged delta once and repoints to it.
        // Digests are over the same (key, state) pairs and carry over unchanged.
        migrator.registerMigration("v7-snapshot-chunks") { db in
            try db.execute(sql: """
                CREATE TABLE snapshot_chunks (
                    chain     INTEGER NOT NULL,
                    delta     INTEGER NOT NULL,
                    first_key TEXT    NOT NULL,
                    count     INTEGER NOT NULL,
                    records   BLOB    NOT NULL,
                    PRIMARY KEY (chain, delta, first_key)
                );
                ALTER TABLE snapshots ADD COLUMN delta INTEGER NOT NULL DEFAULT 0;
                UPDATE snapshots SET delta = seq;
                """)
            let rows = try SQLStatement(db, "SELECT chain, seq, key, state FROM snapshot_states ORDER BY chain, seq, key")
            var writer: ChunkWriter?
            var current: (chain: Int64, seq: Int64) = (-1, -1)
            while try rows.step("cannot read the snapshot rows") {
                let chain = rows.int64(0), seq = rows.int64(1)
                if current != (chain, seq) {
                    _ = try writer?.finish()
                    writer = try ChunkWriter(db, chain: chain, delta: seq)
                    current = (chain, seq)
                }
                try writer!.add(rows.text(2), rows.text(3))
            }
            _ = try writer?.finish()
            try db.execute(sql: "DROP TABLE snapshot_states")
        }

        // v8: the log's tables rebuilt as STRICT tables, every row and hash kept.
        //
        // Every stored value then has exactly the storage class the engine writes
        // (text, integers, a 32-byte hash), which the hash chain does not cover: a
        // value cast to a blob hashes the same but no longer matches `type = 'X'`.
        // And a trigger lets INSERT do nothing but append: REPLACE and UPSERT forms
        // would otherwise delete or overwrite a stored event without firing the
        // UPDATE or DELETE triggers: a row whose id is stored is ignored (the writer's
        // duplicate path relies on it), one whose seq is not the next or whose stream
        // already has its version is refused.
        //
        // The trigger raises FAIL, not ABORT, and neither it nor `events` calls a SQL
        // function (no CHECK (length(hash) = 32) there, unlike chain_head): any of
        // them makes SQLite keep a statement journal for each INSERT, a copy of every
        // page it changes (measured: twice the ingest time). A refused row fails its
        // statement and nothing of it is stored. `verify` checks each hash's length.
        migrator.registerMigration("v8-strict-events") { db in
            try db.execute(sql: """
                CREATE TABLE events_v8 (
                    seq         INTEGER PRIMARY KEY,
                    id          TEXT    NOT NULL UNIQUE,
                    stream      TEXT    NOT NULL,
                    version     INTEGER NOT NULL,
                    type        TEXT    NOT NULL,
                    occurred_at TEXT    NOT NULL,
                    recorded_at TEXT    NOT NULL,
                    data        TEXT    NOT NULL,
                    meta        TEXT    NOT NULL DEFAULT '{}',
                    hash        BLOB    NOT NULL,
                    UNIQUE (stream, version)
                ) STRICT
                """)
            try copyEvents(db, into: "events_v8", progress: progress)
            try db.execute(sql: """
                DROP TABLE events;
                ALTER TABLE events_v8 RENAME TO events;
                CREATE INDEX events_by_type ON events (type, seq);
                CREATE INDEX events_by_occurred_at ON events (occurred_at);
                CREATE TRIGGER events_are_not_updated BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'stored events are never updated: the log is append-only'); END;
                CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
                    BEGIN SELECT RAISE(ABORT, 'stored events are never deleted: the log is append-only'); END;
                CREATE TRIGGER events_are_appended BEFORE INSERT ON events
                BEGIN
                    SELECT RAISE(IGNORE) WHERE EXISTS (SELECT 1 FROM events WHERE id = NEW.id);
                    SELECT RAISE(FAIL, 'events are only appended: seq must be the last seq + 1')
                        WHERE NEW.seq IS NOT coalesce((SELECT max(seq) FROM events), 0) + 1;
                    SELECT RAISE(FAIL, 'events are only appended: the stream already has an event of this version')
                        WHERE EXISTS (SELECT 1 FROM events WHERE stream = NEW.stream AND version = NEW.version);
                END;

                CREATE TABLE chain_head_v8 (
                    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
                    seq         INTEGER NOT NULL,
                    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
                    recorded_at TEXT    NOT NULL
                ) STRICT;
                INSERT INTO chain_head_v8 (singleton, seq, hash, recorded_at) SELECT singleton, seq, hash, recorded_at FROM chain_head;
                DROP TABLE chain_head;
                ALTER TABLE chain_head_v8 RENAME TO chain_head;

                CREATE TABLE event_correlations_v8 (
                    correlation_id TEXT    NOT NULL,
                    seq            INTEGER NOT NULL,
                    PRIMARY KEY (correlation_id, seq)
                ) STRICT, WITHOUT ROWID;
                INSERT INTO event_correlations_v8 (correlation_id, seq)
                    SELECT correlation_id, seq FROM event_correlations ORDER BY correlation_id, seq;
                DROP TABLE event_correlations;
                ALTER TABLE event_correlations_v8 RENAME TO event_correlations;
                """)
        }

        // ---- The scheduler's attempts (issue 24). Kept in its own block: other
        // migrations may be registered before it. ----
        //
        // v9: one row per finished attempt of a scheduled export's slot, timed by the
        // scheduler's clock, so that a failed slot is retried with backoff within its
        // window and `schedule list` can say how often it was tried and when it is tried
        // next (`ScheduleAttempts`). What each export run did stays in `export_runs`.
        migrator.registerMigration("v9-schedule-attempts") { db in
            try db.execute(sql: """
                CREATE TABLE audit_schedule_attempts (
                    name        TEXT    NOT NULL,
                    slot        TEXT    NOT NULL,
                    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
                    finished_at TEXT    NOT NULL,
                    outcome     TEXT    NOT NULL CHECK (outcome IN ('completed', 'failed')),
                    PRIMARY KEY (name, slot, attempt)
                ) STRICT, WITHOUT ROWID;
                """)
        }

        // ---- Code history and current reads (issue 24). Kept in its own block. ----
        //
        // v10: every promoted build's code (DECISIONS 15) and what the last replay did.
        // `audit_code` holds each file's text once, keyed by the SHA-256 of its bytes;
        // `audit_builds` indexes the builds by projection and code hash, each pointing at
        // the `CodeBuilt` event (stream `audit-code-NAME`) that names its files and their
        // hashes, inside the hash chain (`CodeHistory`). `audit_replay_stats` holds, per
        // projection, the last replay or catch-up that folded events: `audit projections`
        // shows its rate.
        migrator.registerMigration("v10-code-history") { db in
            try db.execute(sql: """
                CREATE TABLE audit_code (
                    sha256  TEXT NOT NULL PRIMARY KEY CHECK (length(sha256) = 64),
                    content TEXT NOT NULL
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE audit_builds (
                    event_seq     INTEGER NOT NULL PRIMARY KEY,
                    projection    TEXT    NOT NULL,
                    code_hash     TEXT    NOT NULL,
                    version       INTEGER NOT NULL,
                    handled_types TEXT    NOT NULL,
                    built_at      TEXT    NOT NULL
                ) STRICT;
                CREATE INDEX audit_builds_by_code ON audit_builds (projection, code_hash, event_seq);
                CREATE TABLE audit_replay_stats (
                    projection  TEXT    NOT NULL PRIMARY KEY,
                    finished_at TEXT    NOT NULL,
                    from_seq    INTEGER NOT NULL,
                    to_seq      INTEGER NOT NULL,
                    seconds     REAL    NOT NULL
                ) STRICT, WITHOUT ROWID;
                """)
        }
        // v11: keys parked by a projection with on_error = "park" (`ParkedKeys`), per
        // table (a build's parked set is its own until it is promoted with the table),
        // and their dead letters: the events of a parked key from its first failure on,
        // not folded. Written in the checkpoint's transaction.
        migrator.registerMigration("v11-parked-keys") { db in
            try db.execute(sql: """
                CREATE TABLE audit_parked_keys (
                    projection TEXT    NOT NULL,
                    key        TEXT    NOT NULL,
                    first_seq  INTEGER NOT NULL CHECK (first_seq >= 1),
                    error      TEXT    NOT NULL,
                    parked_at  TEXT    NOT NULL,
                    PRIMARY KEY (projection, key)
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE audit_dead_letters (
                    projection TEXT    NOT NULL,
                    key        TEXT    NOT NULL,
                    seq        INTEGER NOT NULL,
                    PRIMARY KEY (projection, key, seq)
                ) STRICT, WITHOUT ROWID;
                """)
        }
        // v12: the parked set of each snapshot (DECISIONS 11, issue 24), so that a fold
        // from a snapshot of a parking projection starts with the keys parked at its seq.
        // `audit_snapshot_parked_sets` counts them, for each snapshot of a parking
        // projection (none: taken before v12, by a build that did not record them: a
        // parking projection does not start from it); `audit_snapshot_parked` holds
        // each snapshot's parked keys whole (they are few); `audit_snapshot_dead_letters`
        // the dead letters of the chain's parked keys up to its last snapshot, once per
        // (key, seq): a rebuild from a snapshot restores those up to its seq, so that its
        // dead-letter list is as complete as a rebuild from seq 1 gives (`SnapshotParked`).
        migrator.registerMigration("v12-snapshot-parked-sets") { db in
            try db.execute(sql: """
                CREATE TABLE audit_snapshot_parked_sets (
                    chain INTEGER NOT NULL,
                    seq   INTEGER NOT NULL,
                    keys  INTEGER NOT NULL CHECK (keys >= 0),
                    PRIMARY KEY (chain, seq)
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE audit_snapshot_parked (
                    chain      INTEGER NOT NULL,
                    seq        INTEGER NOT NULL,
                    key        TEXT    NOT NULL,
                    first_seq  INTEGER NOT NULL CHECK (first_seq >= 1 AND first_seq <= seq),
                    error      TEXT    NOT NULL,
                    parked_at  TEXT    NOT NULL,
                    PRIMARY KEY (chain, seq, key)
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE audit_snapshot_dead_letters (
                    chain INTEGER NOT NULL,
                    key   TEXT    NOT NULL,
                    seq   INTEGER NOT NULL,
                    PRIMARY KEY (chain, key, seq)
                ) STRICT, WITHOUT ROWID;
                """)
        }
        return migrator
    }

    /// Copies every event into `target` (a table with the columns of `events`) in seq
    /// order, in chunks, reporting progress after each.
    private static func copyEvents(_ db: Database, into target: String, progress: (@Sendable (UpgradeProgress) -> Void)?) throws {
        let columns = "seq, id, stream, version, type, occurred_at, recorded_at, data, meta, hash"
        let total = try Int64.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0
        var copied: Int64 = 0
        var after = Int64.min
        while true {
            try db.execute(
                sql: "INSERT INTO \(target) (\(columns)) SELECT \(columns) FROM events WHERE seq > ? ORDER BY seq LIMIT 100000",
                arguments: [after])
            guard db.changesCount > 0 else { break }
            copied += Int64(db.changesCount)
            after = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM \(target)") ?? after
            progress?(UpgradeProgress(step: "copying the events into a STRICT table", done: copied, total: total))
        }
    }

    /// The identifiers of the migrations applied to the database, read as stored
    /// (whatever their storage class).
    static func appliedMigrations(_ db: Database, path: String) throws -> Set<String> {
        let statement = try SQLStatement(db, "SELECT identifier FROM grdb_migrations", path: path)
        var applied: Set<String> = []
        while try statement.step() { applied.insert(statement.string(0)) }
        return applied
    }

    /// What each migration does, in a line, for `audit init` to say when it upgrades.
    static let summaries: [String: String] = [
        "v1-events": "the events table and the chain head",
        "v2-read-indexes": "indexes by type and by business time, the correlation index, and triggers refusing UPDATE and DELETE of events",
        "v3-projections": "the projections' catalog",
        "v4-snapshots": "projection snapshots",
        "v5-export-runs": "the record of export runs",
        "v6-snapshot-rows-by-seq": "snapshot rows ordered by seq",
        "v7-snapshot-chunks": "snapshot deltas stored in chunks",
        "v8-strict-events": "events, chain_head and event_correlations rebuilt as STRICT tables (every value has the storage class the engine writes), and a trigger that lets INSERT only append (no REPLACE or UPSERT of a stored event)",
        "v9-schedule-attempts": "the record of each attempt of a scheduled export, for retries with backoff",
        "v10-code-history": "the code of every projection build (audit_code) and the registered projections",
        "v11-parked-keys": "keys parked by projections with on_error = \"park\" and their dead letters (audit_parked_keys, audit_dead_letters)",
        "v12-snapshot-parked-sets": "the keys parked at each snapshot of a parking projection and their dead letters (audit_snapshot_parked_sets, audit_snapshot_parked, audit_snapshot_dead_letters)",
    ]

    /// Whether `identifier` names a migration of a later build: `v<number>-<name>`,
    /// numbered past this build's last.
    static func isLaterMigration(_ identifier: String) -> Bool {
        func number(_ id: String) -> Int? {
            guard id.hasPrefix("v"), let dash = id.firstIndex(of: "-") else { return nil }
            let name = id[id.index(after: dash)...]
            guard !name.isEmpty, name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }) else {
                return nil
            }
            return Int(id[id.index(after: id.startIndex)..<dash])
        }
        guard let later = number(identifier), let last = migrationIdentifiers.last.flatMap(number) else { return false }
        return later > last
    }

    /// The identifiers of all migrations this build knows, oldest first.
    static var migrationIdentifiers: [String] { migrator.migrations }
}
