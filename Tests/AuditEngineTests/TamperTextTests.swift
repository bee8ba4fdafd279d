import Foundation
import GRDB
import Testing

@testable import AuditEngine

/// Text is checked as bytes: SQLite stores a NUL or invalid UTF-8 in TEXT without a
/// word, and C's text functions end text at a NUL. A value an older build accepted
/// (its hash matches the stored bytes) is named as such, not as damage, and never
/// hides a real edit made later.
@Suite("Tampering: NUL and invalid UTF-8")
struct TamperTextTests {
    static let columns = ["id", "stream", "type", "occurred_at", "recorded_at", "data", "meta"]

    @Test("a NUL or invalid UTF-8 put into any text column is found: the hash does not match, and the message says what is in it",
          arguments: columns)
    func edited(column: String) throws {
        for (bytes, finding) in [("x'00'", "holds U+0000 (NUL)"), ("x'ff'", "is not UTF-8"), ("x'c0af'", "is not UTF-8"), ("x'eda080'", "is not UTF-8")] {
            let victim = try Victim()
            #expect(victim.sqlite(Victim.dropGuards + "UPDATE events SET \(column) = \(column) || \(bytes) || 'z' WHERE seq = 5") == nil)
            victim.expectProblem(at: 5, "does not match its hash", "its \(column) \(finding)")
        }
    }

    /// Appends rows as an older build did, bypassing this build's checks at entry:
    /// correct hashes over the exact bytes, chained, and the head moved.
    static func appendAsOlderBuild(_ path: String, _ rows: [(id: String, stream: String, type: String)]) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            var head = try Row.fetchOne(db, sql: "SELECT seq, hash, recorded_at FROM chain_head")!
            let time: String = head["recorded_at"]
            var hasher = EventHash()
            for row in rows {
                let seq: Int64 = head["seq"] + 1
                let previous = [UInt8](head["hash"] as Data)
                let version = (try Int64.fetchOne(db, sql: "SELECT max(version) FROM events WHERE CAST(stream AS BLOB) = ?", arguments: [Data(row.stream.utf8)]) ?? 0) + 1
                let hash = hasher.hash(
                    previous: previous, seq: seq, id: row.id, stream: row.stream, version: version, type: row.type, occurredAt: time,
                    recordedAt: time, data: "{}", meta: "{}")
                let statement = try SQLStatement(db, "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, '{}', '{}', ?)")
                statement.bind(1, seq)
                statement.bind(2, text: row.id)
                statement.bind(3, text: row.stream)
                statement.bind(4, version)
                statement.bind(5, text: row.type)
                statement.bind(6, text: time)
                statement.bind(7, text: time)
                statement.bind(8, blob: hash)
                try statement.run()
                try db.execute(sql: "UPDATE chain_head SET seq = ?, hash = ?, recorded_at = ?", arguments: [seq, Data(hash), time])
                head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM chain_head")!
            }
        }
    }

    @Test("values an older build accepted are named as such, not as damage; readers see them whole; a later edit is still found")
    func olderBuild() throws {
        let victim = try Victim()
        try Self.appendAsOlderBuild(victim.path, [("nul-1", "s1\u{0}b", "T"), ("n\u{0}2", "s2", "T\u{0}x"), ("ok-3", "s1", "T")])
        let report = try EventStore.verify(path: victim.path)
        #expect(report.events == 12 && report.olderBuildSeqs == [10, 11] && report.olderBuildCount == 2)
        #expect(report.olderBuildNotes[0].contains("its stream holds U+0000 (NUL) at byte 3") && report.olderBuildNotes[0].contains("an older build accepted it"))
        #expect(report.json.hasSuffix(#","accepted_by_older_build":{"count":2,"seqs":[10,11]}}"#))

        let store = try EventStore(path: victim.path, access: .readOnly)
        let event = try store.events(EventFilter(fromSeq: 10, toSeq: 11))
        #expect(event.map(\.stream) == ["s1\u{0}b", "s2"] && event.map(\.id) == ["nul-1", "n\u{0}2"] && event[1].type == "T\u{0}x")
        #expect(event[0].jsonLine.contains(#""stream":"s1\u0000b""#))
        #expect(try store.events(EventFilter(stream: "s1")).map(\.seq) == [1, 4, 7, 12])

        // A real edit after them is reported, and they are not.
        #expect(victim.sqlite(Victim.dropGuards + "UPDATE events SET data = '{\"forged\":1}' WHERE seq = 12") == nil)
        let failure = try #require(victim.failure())
        #expect(failure.seqs == [12])
    }

    @Test("each damaged event is reported on its own: every row is checked against its stored predecessor")
    func independent() throws {
        let victim = try Victim()
        #expect(victim.sqlite(Victim.dropGuards + "UPDATE events SET data = '{}' WHERE seq IN (3, 7)") == nil)
        let failure = try #require(victim.failure())
        #expect(failure.seqs == [3, 7])
        #expect(failure.problems.filter { $0.seq == nil }.count == 3)  // the dropped triggers
    }

    @Test("at most 20 bad seqs are shown, with the count of all")
    func limited() throws {
        let dir = TempDir()
        let store = try dir.store()
        try store.ingest(path: dir.jsonl("e.jsonl", (1...40).map { #"{"id":"i\#($0)","stream":"s","type":"T","data":{}}"# }))
        try sqlite3CLI(dir.file("audit.db"), Victim.dropGuards + "UPDATE events SET data = '{\"x\":1}' WHERE seq > 10")
        let failure = try #require(throws: IntegrityFailure.self) { try EventStore.verify(path: dir.file("audit.db")) }
        #expect(failure.seqs == Array(11...30) && failure.total == 33)
        #expect(failure.description.hasPrefix("integrity check failed: 33 problems\n"))
        #expect(failure.description.hasSuffix("  … and 10 more at later seqs"))
    }
}

/// Values that C or SQLite would cut, refused where they enter.
@Suite("NUL at entry")
struct NulAtEntryTests {
    @Test("ingest refuses U+0000 in stream, type, id and meta.correlation_id, naming the line and field")
    func ingest() throws {
        for (line, reason) in [
            (#"{"id":"a","stream":"a\u0000b","type":"T","data":{}}"#, #""stream" must not contain U+0000"#),
            (#"{"id":"a","stream":"a","type":"T\u0000","data":{}}"#, #""type" must not contain U+0000"#),
            (#"{"id":"a\u0000","stream":"a","type":"T","data":{}}"#, #""id" must not contain U+0000"#),
            (#"{"id":"a","stream":"a","type":"T","data":{},"meta":{"correlation_id":"c\u0000"}}"#, #""meta.correlation_id" must not contain U+0000"#),
        ] {
            let dir = TempDir()
            let store = try dir.store()
            let file = dir.jsonl("n.jsonl", [#"{"id":"ok","stream":"a","type":"T","data":{"x":"a\u0000b"}}"#, line])
            #expect {
                try store.ingest(path: file)
            } throws: { error in
                guard case .ingestRejected(_, let errors, _) = error as? StoreError else { return false }
                return errors.map(\.line) == [2] && errors[0].reason.contains(reason)
            }
            #expect(try store.head().seq == 0)
        }
    }

    @Test("append and filters refuse U+0000; a NUL inside data stays data")
    func appendAndFilters() throws {
        let dir = TempDir()
        let store = try dir.store()
        #expect(throws: StoreError.invalidEvent(reason: #""stream" must not contain U+0000 (NUL)"#)) {
            try store.append(NewEvent(stream: "a\u{0}b", type: "T"))
        }
        let stored = try store.append(NewEvent(stream: "a", type: "T", data: .object([JSONMember("x", .string("a\u{0}b"))]))).event
        #expect(stored.data == #"{"x":"a\u0000b"}"#)
        for filter in [EventFilter(stream: "a\u{0}"), EventFilter(type: "\u{0}"), EventFilter(correlationId: "c\u{0}")] {
            #expect(throws: StoreError.self) { try store.events(filter) }
        }
        #expect(try EventStore.verify(path: dir.file("audit.db")).events == 1)
    }
}
