import Foundation
import PostgresNIO
import Testing
import VigilTesting

@testable import EventStore

@Suite("Reading the log")
struct ReadTests {
    @Test("checkpoint tokens round-trip, sort like checkpoints and reject garbage")
    func tokens() throws {
        let a = Checkpoint(transactionID: 0x2a, position: 7)
        let b = Checkpoint(transactionID: 0x2a, position: 300)
        let c = Checkpoint(transactionID: 0x1_0000_0000, position: 1)
        #expect(try Checkpoint(token: a.token) == a)
        #expect(try Checkpoint(token: c.token) == c)
        #expect(a < b && b < c)
        #expect(a.token < b.token && b.token < c.token)
        #expect(a.token.count == 32)
        #expect(throws: CheckpointError.self) { try Checkpoint(token: "abc") }
        #expect(throws: CheckpointError.self) { try Checkpoint(token: String(repeating: "z", count: 32)) }
        #expect(throws: CheckpointError.self) { try Checkpoint(token: "+" + String(repeating: "0", count: 31)) }
    }

    @Test("type and stream-prefix filters, limits, and a next checkpoint that skips filtered events")
    func filters() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-front", events: [detection(), detection()])
            try await store.append(
                to: "secevent-1",
                events: [
                    NewEvent(type: "SecurityEventOpened", data: "{}"),
                    NewEvent(type: "SecurityEventClosed", data: "{}"),
                ]
            )
            try await store.append(to: "camera-back", events: [detection()])

            let all = try await store.readSettled(after: .start)
            #expect(
                all.events.map(\.stream) == ["camera-front", "camera-front", "secevent-1", "secevent-1", "camera-back"])
            #expect(!all.isFull)
            #expect(all.next == all.events.last?.checkpoint)

            // Settled reads: another test's transaction (any database of the cluster) can hold
            // the horizon for a moment.
            let cameras = try await store.readSettled(after: .start, filter: LogFilter(streamPrefix: "camera-"))
            #expect(cameras.events.count == 3)
            let opened = try await store.readSettled(after: .start, filter: LogFilter(types: ["SecurityEventOpened"]))
            #expect(opened.events.map(\.type) == ["SecurityEventOpened"])
            // Not full: the next read starts after the newest event, not after the last match.
            #expect(opened.next == all.events.last?.checkpoint)

            let firstTwo = try await store.read(after: .start, limit: 2)
            #expect(firstTwo.isFull)
            #expect(firstTwo.next == all.events[1].checkpoint)
            let rest = try await store.readSettled(after: firstTwo.next, limit: 10)
            #expect(rest.events.map(\.id) == all.events.dropFirst(2).map(\.id))
            var head = try await store.head()
            let deadline = ContinuousClock.now + .seconds(60)
            while head != all.events.last?.checkpoint && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                head = try await store.head()
            }
            let last = try #require(all.events.last?.checkpoint)
            #expect(head <= last)  // never beyond what was written
            // Seen twice in clean-clone runs (a fresh cluster), never on a long-lived one: head()
            // stayed behind events a read had already returned, for over 60 s, as if the
            // cluster's xmin had moved back (an autovacuum transaction that counts again after
            // its vacuum phase is the suspect; it writes no events, so no event is lost). Under
            // investigation; see the issue notes.
            var holders = ""
            if head != last {
                // Who holds the horizon: for the next person looking into this.
                let rows = try await store.client.query(
                    """
                    SELECT pid || ' ' || coalesce(datname, '-') || ' ' || coalesce(backend_type, '') || ' xid '
                           || coalesce(backend_xid::text, '-') || ' xmin ' || coalesce(backend_xmin::text, '-')
                           || ' ' || coalesce(state, '') || ': ' || left(query, 80)
                    FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL
                    """, logger: TestDatabase.logger)
                for try await line in rows.decode(String.self) { holders += line + "\n" }
                holders +=
                    "xmin now: "
                    + (try await store.client.query(
                        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", logger: TestDatabase.logger
                    ).decode(String.self).first { _ in true } ?? "?")
            }
            withKnownIssue("head() can lag behind a read while the cluster's xmin moves back", isIntermittent: true) {
                #expect(head == last, "\(holders)")
            }
        }
    }

    @Test("events behind an open transaction wait, the holder is reported, and they appear when it ends")
    func horizon() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            #expect(before.events.map(\.stream) == ["camera-1"])
            let (opened, release) = AsyncStream.makeStream(of: Void.self)
            let (proceed, proceedContinuation) = AsyncStream.makeStream(of: Void.self)
            async let holder: Void = store.transaction { transaction in
                try await transaction.append(to: "camera-slow", events: [detection()])
                proceedContinuation.yield()
                for await _ in opened { break }
            }
            for await _ in proceed { break }
            try await store.append(to: "camera-2", events: [detection()])

            let page = try await store.read(after: before.next)
            #expect(page.events.isEmpty)
            #expect(page.pendingBeyondHorizon)
            let holders = try await store.horizonHolders(limit: 100)
            #expect(holders.contains { $0.application == "vigil" && $0.state == "idle in transaction" })

            release.yield()
            try await holder
            let after = try await store.readSettled(after: page.next)
            #expect(Set(after.events.map(\.stream)) == ["camera-slow", "camera-2"])
            #expect(!after.pendingBeyondHorizon)
        }
    }

    @Test("SQL scripts split at top-level semicolons only")
    func scriptSplitting() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT ';');
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM 1; RETURN NULL; END;
            $$;
            /* block; comment */ SELECT "odd;name" FROM a;
            """
        let statements = SQLScript.statements(in: script)
        #expect(statements.count == 3)
        #expect(statements[1].contains("RETURN NULL; END;"))
        #expect(statements[2].hasSuffix(#"SELECT "odd;name" FROM a"#))
    }
}
