/// One replay at a time per database, across processes.
///
/// A `DatabaseLock` named `replay` (`<database>-replay.lock`): a crashed replay never
/// leaves the database locked. Two replays at once would write the same tables and
/// positions interleaved.
final class ReplayLock: Sendable {
    private let lock: DatabaseLock

    /// Takes the lock, or throws at once naming who holds it.
    convenience init(databasePath: String) throws {
        let (lock, holder) = try Self.attempt(databasePath: databasePath)
        guard let lock else {
            throw StoreError.storage(
                "another replay is running on \(databasePath)\(holder.isEmpty ? "" : " (\(holder))"); wait for it to finish, then run this one again")
        }
        self.init(lock.lock)
    }

    private init(_ lock: DatabaseLock) {
        self.lock = lock
    }

    /// Takes the lock, or returns nil at once with who holds it ("pid 123 since …").
    static func attempt(databasePath: String) throws -> (lock: ReplayLock?, holder: String) {
        let (lock, holder) = try DatabaseLock.attempt(databasePath: databasePath, name: "replay")
        return (lock.map(ReplayLock.init), holder)
    }
}
