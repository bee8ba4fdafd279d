import Foundation
import GRDB

/// How far an upgrade (or a verification) has come.
public struct UpgradeProgress: Sendable {
    /// What it is doing.
    public var step: String
    public var done: Int64
    public var total: Int64
}

/// What `EventStore.upgrade` did.
public struct UpgradeReport: Sendable, Equatable {
    /// The migrations it applied, oldest first; empty when the database was up to date.
    public var applied: [String]
    /// The database's newest migration before.
    public var from: String
    /// Events in the log, the same before and after.
    public var events: Int64
    /// The chain head (hex), the same before and after.
    public var head: String
}

extension EventStore {
    /// What a migration does, in one line ("" for an unknown identifier).
    package static func migrationSummary(_ identifier: String) -> String { Schema.summaries[identifier] ?? "" }

    /// Brings a database made by an older build up to this build's schema: verifies the
    /// whole log first (a damaged log is not touched), applies the missing migrations in
    /// one transaction each, and verifies again, requiring the same events and head.
    ///
    /// - Parameter progress: hears each step, about every 100,000 events.
    /// - Throws: `IntegrityFailure` when the log does not verify before (nothing was
    ///   changed); `StoreError` when it cannot be opened or written.
    @discardableResult
    public static func upgrade(path: String, progress: (@Sendable (UpgradeProgress) -> Void)? = nil) throws -> UpgradeReport {
        // Opened unchecked: an altered schema is reported by the verification below,
        // with every other problem of the log, before anything is changed.
        let had = try EventStore(path: path, access: .readOnly, checkingSchema: false).appliedMigrations
        let pending = Schema.migrationIdentifiers.filter { !had.contains($0) }
        guard !pending.isEmpty else {
            let head = try EventStore(path: path, access: .readOnly).head()
            return UpgradeReport(applied: [], from: had.last ?? "", events: head.seq, head: Hex.encode(head.hash))
        }
        let before = try verify(path: path, progress: progress)
        let report = UpgradeReport(applied: pending, from: had.last ?? "", events: before.events, head: before.head)
        do {
            let pool = try openPool(path)
            try Schema.makeMigrator(progress: progress).migrate(pool)
        } catch let error as DatabaseError {
            throw openFailure(SQLiteFailure(error, path: path))
        }
        let after = try verify(path: path, progress: progress)
        guard after.events == before.events, after.head == before.head else {
            throw StoreError.integrity(
                seq: after.events,
                reason: "after the upgrade the log holds \(after.events) events with head \(after.head), before it \(before.events) with head \(before.head): another process appended meanwhile, or the upgrade is wrong; run audit verify")
        }
        return report
    }
}
