import EventStore
import Foundation
import PostgresNIO
import Testing
import VigilTesting

@Suite("Appending to streams")
struct AppendTests {
    @Test("appends get consecutive versions and increasing checkpoints, and read back intact")
    func appendAndRead() async throws {
        try await TestDatabase.withStore { store in
            let first = try await store.append(to: "camera-a", events: [detection(), detection()], expected: .noStream)
            #expect(first.version == 2)
            #expect(first.checkpoints.count == 2)
            #expect(first.checkpoints[0] < first.checkpoints[1])
            let second = try await store.append(to: "camera-a", events: [detection()], expected: .exact(2))
            #expect(second.version == 3)
            #expect(second.checkpoints[0] > first.checkpoints[1])

            let page = try #require(try await store.readStream("camera-a"))
            #expect(page.version == 3)
            #expect(page.events.map(\.version) == [1, 2, 3])
            #expect(page.events.map(\.checkpoint) == first.checkpoints + second.checkpoints)
            let fromTwo = try #require(try await store.readStream("camera-a", fromVersion: 2))
            #expect(fromTwo.events.map(\.version) == [3])
            #expect(try await store.readStream("camera-missing") == nil)
        }
    }

    @Test("a wrong expected version is a typed conflict carrying the current version, and writes nothing")
    func conflicts() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "rule-7", events: [detection(), detection()])
            await #expect(throws: AppendError.wrongExpectedVersion(stream: "rule-7", expected: .exact(5), current: 2)) {
                try await store.append(to: "rule-7", events: [detection()], expected: .exact(5))
            }
            await #expect(throws: AppendError.wrongExpectedVersion(stream: "rule-7", expected: .noStream, current: 2)) {
                try await store.append(to: "rule-7", events: [detection()], expected: .noStream)
            }
            await #expect(
                throws: AppendError.wrongExpectedVersion(stream: "rule-8", expected: .streamExists, current: 0)
            ) {
                try await store.append(to: "rule-8", events: [detection()], expected: .streamExists)
            }
            #expect(try await store.readAll().count == 2)
            #expect(try await store.readStream("rule-7")?.version == 2)
            #expect(try await store.readStream("rule-8") == nil)
        }
    }

    @Test("re-appending stored event ids returns the original result and writes nothing")
    func idempotency() async throws {
        try await TestDatabase.withStore { store in
            let events = [detection(), detection()]
            let original = try await store.append(to: "camera-b", events: events, expected: .noStream)
            // A retry with the same expectation would conflict, but it is recognised as a retry.
            let retry = try await store.append(to: "camera-b", events: events, expected: .noStream)
            #expect(retry.wasAlreadyStored)
            #expect(retry.version == original.version)
            #expect(retry.checkpoints == original.checkpoints)
            #expect(try await store.readAll().count == 2)

            // Some stored, some new: refused as a whole.
            await #expect(throws: AppendError.duplicateEventID(events[1].id)) {
                try await store.append(to: "camera-b", events: [events[1], detection()])
            }
            // The same id in another stream: refused.
            await #expect(throws: AppendError.duplicateEventID(events[0].id)) {
                try await store.append(to: "camera-c", events: [events[0]])
            }
            // The same id twice in one request: refused.
            let twice = detection()
            await #expect(throws: AppendError.self) {
                try await store.append(to: "camera-c", events: [twice, twice])
            }
            #expect(try await store.readAll().count == 2)
        }
    }

    @Test("a stored id is a retry when its digest agrees, or when the two digests' forms differ")
    func retriesCompareDigestsOfOneForm() async throws {
        @Sendable func keyed(_ id: UUID, _ digest: String) -> NewEvent {
            NewEvent(
                id: id, type: "DetectionRecorded", data: #"{"camera_id":"porch"}"#,
                metadata: #"{"actor":"tests","request_digest":"\#(digest)"}"#, requestDigest: digest)
        }
        try await TestDatabase.withStore { store in
            let (legacy, current) = (UUID(), UUID())
            try await store.append(to: "camera-porch", events: [keyed(legacy, "ab12")])
            try await store.append(to: "camera-porch", events: [keyed(current, "c1:ab12")])
            // The same form: equal digests are a retry, others a different request.
            #expect(try await store.append(to: "camera-porch", events: [keyed(current, "c1:ab12")]).wasAlreadyStored)
            await #expect(throws: AppendError.duplicateEventID(current)) {
                try await store.append(to: "camera-porch", events: [keyed(current, "c1:cd34")])
            }
            await #expect(throws: AppendError.duplicateEventID(legacy)) {
                try await store.append(to: "camera-porch", events: [keyed(legacy, "cd34")])
            }
            // Stored in the first form (no prefix), retried in the current one: can't tell, a retry.
            #expect(try await store.append(to: "camera-porch", events: [keyed(legacy, "c1:cd34")]).wasAlreadyStored)
            #expect(try await store.readAll().count == 2)
        }
    }

    @Test("the group commit writes fresh events in one statement, numbered after their streams' versions")
    func oneStatement() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-x", events: [detection(), detection()])
            let (e1, e2, e3, e4) = (detection(), detection(), detection(), detection())
            let results = try await store.appendBatch([
                AppendRequest(stream: "camera-x", events: [e1]),
                AppendRequest(stream: "camera-y", events: [e2, e3]),
                AppendRequest(stream: "camera-x", events: [e4]),
            ]).map { try $0.get() }
            #expect(store.appendPaths.oneStatement == 1)
            #expect(store.appendPaths.deferred == 0)
            #expect(results.map(\.version) == [3, 2, 4])
            #expect(results.map(\.checkpoints.count) == [1, 2, 1])
            #expect(results.allSatisfy { !$0.wasAlreadyStored })

            let x = try #require(try await store.readStream("camera-x"))
            #expect(x.events.map(\.version) == [1, 2, 3, 4])
            #expect(Array(x.events.map(\.id).suffix(2)) == [e1.id, e4.id])
            #expect(Array(x.events.map(\.checkpoint).suffix(2)) == results[0].checkpoints + results[2].checkpoints)
            let y = try #require(try await store.readStream("camera-y"))
            #expect(y.events.map(\.id) == [e2.id, e3.id])
            #expect(y.events.map(\.checkpoint) == results[1].checkpoints)
            // The streams' versions moved with their events: the full path appends after them.
            #expect(try await store.append(to: "camera-y", events: [detection()], expected: .exact(2)).version == 3)
        }
    }

    @Test("what the one statement can't decide goes through the full transaction, and nothing is written twice")
    func oneStatementDefers() async throws {
        try await TestDatabase.withStore { store in
            func paths() -> (Int, Int) {
                (
                    store.appendPaths.oneStatement,
                    store.appendPaths.deferred
                )
            }
            let (a, b) = (detection(), detection())
            let original = try await store.appendBatch([AppendRequest(stream: "camera-z", events: [a, b])])[0].get()
            #expect(paths() == (1, 0))

            // A retry: stored ids. The full path recognises it.
            let retry = try await store.appendBatch([AppendRequest(stream: "camera-z", events: [a, b])])[0].get()
            #expect(paths() == (1, 1))
            #expect(retry.wasAlreadyStored)
            #expect(retry.checkpoints == original.checkpoints)
            // A stored id in another stream: refused there.
            let clash = try await store.appendBatch([AppendRequest(stream: "camera-w", events: [a])])[0]
            #expect(paths() == (1, 2))
            #expect(throws: AppendError.duplicateEventID(a.id)) { try clash.get() }
            // An expected version: the full path only.
            let expecting = try await store.appendBatch([
                AppendRequest(stream: "camera-z", events: [detection()], expected: .exact(1))
            ])[0]
            #expect(paths() == (1, 2))
            #expect(throws: AppendError.wrongExpectedVersion(stream: "camera-z", expected: .exact(1), current: 2)) {
                try expecting.get()
            }

            // An archived stream, and one whose last writer is younger than any transaction to come
            // (set by hand): the statement refuses and writes nothing.
            try await store.client.query(
                "UPDATE streams SET archived_at = now() WHERE stream = 'camera-z'", logger: TestDatabase.logger)
            let archived = try await store.appendBatch([AppendRequest(stream: "camera-z", events: [detection()])])[0]
            #expect(paths() == (1, 3))
            #expect(throws: AppendError.streamArchived(stream: "camera-z")) { try archived.get() }
            try await store.append(to: "camera-v", events: [detection()])
            try await store.client.query(
                "UPDATE streams SET last_tx = '4000000000000'::xid8 WHERE stream = 'camera-v'",
                logger: TestDatabase.logger)
            await #expect(throws: AppendError.tooMuchContention(stream: "camera-v")) {
                try await store.appendBatch([AppendRequest(stream: "camera-v", events: [detection()])])
            }
            #expect(paths() == (1, 4))

            #expect(try await store.readAll().count == 3)
            #expect(try await store.readStream("camera-z")?.version == 2)
            #expect(try await store.readStream("camera-v")?.version == 1)
        }
    }

    @Test("a transaction that rolls back leaves no event behind")
    func rollback() async throws {
        struct Abort: Error {}
        try await TestDatabase.withStore { store in
            await #expect(throws: Abort.self) {
                try await store.transaction { transaction in
                    try await transaction.append(to: "camera-d", events: [detection()])
                    throw Abort()
                }
            }
            #expect(try await store.readAll().isEmpty)
            #expect(try await store.readStream("camera-d") == nil)
            // The stream can still start at version 1.
            let result = try await store.append(to: "camera-d", events: [detection()], expected: .noStream)
            #expect(result.version == 1)
        }
    }

    @Test("appending in a transaction that skips the flush wait makes its commit wait again")
    func appendingRestoresTheFlushWait() async throws {
        // A projection runner's batch commits without waiting for the WAL flush; a reactor's
        // batch that appends events must wait: others may read them at once.
        try await TestDatabase.withStore { store in
            let settings = try await store.transaction { transaction in
                let connection = transaction.connection
                func current() async throws -> String {
                    try await connection.query("SHOW synchronous_commit", logger: TestDatabase.logger)
                        .decode(String.self).first { _ in true } ?? "?"
                }
                try await connection.query("SET LOCAL synchronous_commit = off", logger: TestDatabase.logger)
                _ = try await transaction.appendBatch([])
                let afterNothing = try await current()
                try await transaction.append(to: "camera-e", events: [detection()])
                return [afterNothing, try await current()]
            }
            #expect(settings == ["off", "on"])
        }
    }

    @Test("the log refuses UPDATE and DELETE")
    func appendOnly() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-e", events: [detection()])
            await #expect(throws: PSQLError.self) {
                try await store.client.query("UPDATE events SET type = 'Tampered'", logger: TestDatabase.logger)
            }
            await #expect(throws: PSQLError.self) {
                try await store.client.query("DELETE FROM events", logger: TestDatabase.logger)
            }
            #expect(try await store.readAll().map(\.type) == ["TestDetection"])
        }
    }

    @Test("bulk COPY keeps payloads byte for byte, skips stored events and assigns stream versions")
    func bulk() async throws {
        try await TestDatabase.withStore { store in
            let tricky = NewEvent(
                type: "TestDetection",
                data: #"{"note":"tab\there, newline\nthere, backslash \\ and quote \" — ünïcødé 📷"}"#
            )
            try await store.append(to: "camera-f", events: [detection()])
            let existing = detection()
            try await store.append(to: "camera-g", events: [existing])
            let items: [(stream: String, event: NewEvent)] =
                [("camera-f", tricky), ("camera-g", existing)] + (0..<50).map { ("camera-f", detection(sequence: $0)) }
            let result = try await store.appendBulk(items)
            #expect(result.appended == 51)
            #expect(result.alreadyStored == 1)
            #expect(result.refused.isEmpty)

            let stream = try #require(try await store.readStream("camera-f"))
            #expect(stream.version == 52)
            #expect(stream.events.map(\.version) == Array(1...52))
            let stored = try #require(stream.events.first { $0.id == tricky.id })
            let decoded = try JSONSerialization.jsonObject(with: Data(stored.data.utf8)) as? [String: String]
            #expect(decoded?["note"] == "tab\there, newline\nthere, backslash \\ and quote \" — ünïcødé 📷")
            #expect(try await store.readAll().count == 53)
        }
    }

    @Test("migrations are recorded and applying them again changes nothing")
    func migrationsAreIdempotent() async throws {
        try await TestDatabase.withStore { store in
            let migrator = Migrator.store()
            let applied = try await migrator.migrate(client: store.client, logger: TestDatabase.logger)
            let pending = try await migrator.pending(client: store.client, logger: TestDatabase.logger)
            #expect(applied.isEmpty)
            #expect(pending.isEmpty)
            #expect(
                try migrator.migrations().map(\.version) == [
                    "0001_events", "0002_projections", "0003_read_support", "0004_parked_events", "0005_api_key_usage",
                    "0006_deferred_indexes", "0007_projection_versions", "0008_read_model_sessions",
                    "0009_operational_logs", "0010_retention", "0011_append_in_one_statement", "0012_move_checkpoint",
                    "0013_read_log_kept_plans",
                ])
        }
    }
}
