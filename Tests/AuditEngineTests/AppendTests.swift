import Testing

@testable import AuditEngine

@Suite("Appending events")
struct AppendTests {
    @Test("seq is global and gap-free, version counts within the stream")
    func positions() throws {
        let dir = TempDir()
        let store = try dir.store()
        let a1 = try store.append(NewEvent(stream: "a", type: "T")).event
        let b1 = try store.append(NewEvent(stream: "b", type: "T")).event
        let a2 = try store.append(NewEvent(stream: "a", type: "T")).event
        #expect([a1.seq, b1.seq, a2.seq] == [1, 2, 3])
        #expect([a1.version, b1.version, a2.version] == [1, 1, 2])
        #expect(a1.recordedAt <= b1.recordedAt && b1.recordedAt <= a2.recordedAt)
        #expect(a1.occurredAt == a1.recordedAt)
        #expect(try store.verify().events == 3)
    }

    @Test("expected_version is checked; a conflict says the actual version and appends nothing")
    func expectedVersion() throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.append(NewEvent(stream: "s", type: "T", expectedVersion: .noStream))
        try store.append(NewEvent(stream: "s", type: "T", expectedVersion: .exactly(1)))
        #expect(throws: StoreError.versionConflict(stream: "s", expected: 1, actual: 2)) {
            try store.append(NewEvent(stream: "s", type: "T", expectedVersion: .exactly(1)))
        }
        #expect(throws: StoreError.versionConflict(stream: "s", expected: 0, actual: 2)) {
            try store.append(NewEvent(stream: "s", type: "T", expectedVersion: .noStream))
        }
        #expect(try store.head().seq == 2)
    }

    @Test("re-sending an id with identical content is a duplicate; with other content an error")
    func idempotency() throws {
        let dir = TempDir()
        let store = try dir.store()
        let event = NewEvent(
            stream: "s", type: "T", data: .object([JSONMember("n", .int(1))]), id: "e-1", expectedVersion: .noStream)
        let first = try store.append(event)
        let again = try store.append(event)
        #expect(!first.wasDuplicate && again.wasDuplicate)
        #expect(again.event == first.event)
        var changed = event
        changed.data = .object([JSONMember("n", .int(2))])
        #expect(throws: StoreError.idConflict(id: "e-1", existingSeq: 1)) { try store.append(changed) }
        #expect(try store.head().seq == 1)
    }

    @Test(
        "invalid events are refused with the field named",
        arguments: [
            (NewEvent(stream: "", type: "T"), "\"stream\" must not be empty"),
            (NewEvent(stream: "s", type: ""), "\"type\" must not be empty"),
            (NewEvent(stream: String(repeating: "x", count: 513), type: "T"), "\"stream\" is 513 bytes"),
            (NewEvent(stream: "s", type: "T", data: .array([])), "\"data\" must be a JSON object"),
            (NewEvent(stream: "s", type: "T", meta: .string("x")), "\"meta\" must be a JSON object"),
            (NewEvent(stream: "s", type: "T", id: ""), "\"id\" must not be empty"),
        ])
    func invalid(event: NewEvent, reason: String) throws {
        let dir = TempDir()
        let store = try dir.store()
        #expect {
            try store.append(event)
        } throws: { error in
            (error as? StoreError)?.category == .invalidInput && "\(error)".contains(reason)
        }
        #expect(try store.head().seq == 0)
    }

    @Test("a new database uses 16 KiB pages and WAL")
    func pragmas() throws {
        let dir = TempDir()
        _ = try dir.store()
        #expect(try sqlite3CLI(dir.file("audit.db"), "PRAGMA page_size; PRAGMA journal_mode") == "16384\nwal\n")
    }

    @Test("a missing database is an error that says what to do, not a new empty file")
    func missingDatabase() {
        let dir = TempDir()
        #expect(throws: StoreError.noDatabase(path: dir.file("none.db"))) {
            try EventStore(path: dir.file("none.db"))
        }
    }
}
