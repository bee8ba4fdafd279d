/// One replay at a time per database, across processes.
///
/// A `DatabaseLock` named `replay` (`<database>-replay.lock`): a crashed replay never
/// leaves the database locked. Two replays at once would write the same tables and
/// positions interleaved.
final class ReplayLock: Sendable {
    private let lock: DatabaseLock

    /// Takes the lock, or throws at once naming who holds it.
    init(databasePath: String) throws {
        let (lock, holder) = try DatabaseLock.attempt(databasePath: databasePath, name: "replay")
        guard let lock else {
            throw StoreError.storage(
                "another replay is running on \(databasePath)\(holder.isEmpty ? "" : " (\(holder))"); wait for it to finish, then run this one again")
        }
        self.lock = lock
    }
}
