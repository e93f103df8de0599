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
            // The settled read returned every event, so the horizon has passed them all, and
            // it never moves back: the head is exactly the last one.
            let last = try #require(all.events.last?.checkpoint)
            #expect(try await store.head() == last)
        }
    }

    /// Burns transaction ids (one committed transaction each) until the next one is `target`.
    static func burnTransactions(_ store: EventStore, until target: UInt64) async throws {
        while true {
            let current = try #require(
                try await store.client.query("SELECT pg_current_xact_id()::text", logger: TestDatabase.logger)
                    .decode(String.self).first { _ in true }.flatMap { UInt64($0) })
            guard current < target else { return }
            let count = Int(min(target - current, 500_000))
            try await store.client.query(
                """
                DO $$ BEGIN FOR i IN 1..\(unescaped: String(count)) LOOP
                    PERFORM pg_current_xact_id(); COMMIT;
                END LOOP; END $$
                """,
                logger: TestDatabase.logger)
        }
    }

    /// `/ws/log` catches up from the table (PostgreSQL's `starts_with`, bytes) and then filters
    /// live in Swift: both must take the same events, also where a prefix ends inside a
    /// combined character or differs from the stream only in Unicode form.
    @Test("a stream prefix takes in Swift exactly what it takes in the table: by bytes")
    func prefixesCompareBytes() async throws {
        try await TestDatabase.withStore { store in
            let streams = ["p-e\u{301}x", "p-\u{e9}y", "p-ez"]
            for stream in streams { try await store.append(to: stream, events: [detection()]) }
            let all = try await store.readSettled(after: .start)
            for prefix in ["p-e", "p-\u{e9}", "p-e\u{301}", "p-"] {
                let filter = LogFilter(streamPrefix: prefix)
                let table = try await store.readSettled(after: .start, filter: filter).events.map(\.stream)
                let live = all.events.filter(filter.takes).map(\.stream)
                #expect(
                    live.map { Array($0.utf8) } == table.map { Array($0.utf8) },
                    "prefix \(prefix.unicodeScalars.map { String($0.value, radix: 16) })")
            }
        }
    }

    @Test("the head, reads and their order compare transaction ids as numbers across a power of ten")
    func transactionIDsAcrossPowersOfTen() async throws {
        try await TestDatabase.withStore { store in
            // A log whose transaction ids have different lengths: as text, "96" sorts after "220".
            let older = try await store.insertEventRow(stream: "camera-a", transaction: 96)
            let newer = try await store.insertEventRow(stream: "camera-b", transaction: 220)
            #expect(try await store.head() == newer)
            let page = try await store.readSettled(after: .start)
            #expect(page.events.map(\.checkpoint) == [older, newer])
            #expect(page.next == newer)

            // The same with real transactions: append, burn ids until the next power of ten,
            // append again. Cheap on a young cluster (CI's is new every run); skipped past 3M ids
            // (a long-lived dev cluster), where the rows above still prove the order.
            let first = try await store.append(to: "camera-c", events: [detection()]).checkpoints[0]
            var power: UInt64 = 10
            while power <= first.transactionID { power *= 10 }
            guard power - first.transactionID <= 3_000_000 else { return }
            try await Self.burnTransactions(store, until: power)
            let second = try await store.append(to: "camera-d", events: [detection()]).checkpoints[0]
            #expect(String(second.transactionID) < String(first.transactionID), "the ids must cross a power of ten")
            let all = try await store.readAll()
            #expect(all.map(\.stream) == ["camera-a", "camera-b", "camera-c", "camera-d"])
            #expect(all.last?.checkpoint == second)
            #expect(try await store.head() == second)
            #expect(try await store.read(after: first).events.map(\.checkpoint) == [second])
        }
    }

    @Test("a checkpoint beyond the read horizon is refused until the horizon has passed it")
    func checkpointBeyondHorizon() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            let (opened, release) = AsyncStream.makeStream(of: Void.self)
            let (proceed, proceedContinuation) = AsyncStream.makeStream(of: Void.self)
            async let holder: Void = store.transaction { transaction in
                try await transaction.append(to: "camera-slow", events: [detection()])
                proceedContinuation.yield()
                for await _ in opened { break }
            }
            for await _ in proceed { break }
            // An append's checkpoint: its transaction is younger than the open one.
            let appended = try await store.append(to: "camera-2", events: [detection()]).checkpoints[0]
            do {
                _ = try await store.read(after: appended)
                Issue.record("a read after a checkpoint beyond the horizon must be refused")
            } catch let error as LogReadError {
                guard case .beyondHorizon(let checkpoint, let horizon) = error else { throw error }
                #expect(checkpoint == appended)
                #expect(horizon <= appended.transactionID)
            }
            // Forged far ahead: refused too.
            let forged = Checkpoint(transactionID: UInt64(Int64.max), position: 1)
            await #expect(throws: LogReadError.self) { try await store.read(after: forged) }
            // A checkpoint a read handed out is fine.
            #expect(try await store.read(after: before.next).events.isEmpty)

            release.yield()
            try await holder
            // Once the open transaction has ended, the same token reads (nothing older can
            // commit any more), and the held event was not skipped by a read from before.
            let after = try await store.readSettled(after: before.next)
            #expect(after.events.map(\.stream) == ["camera-slow", "camera-2"])
            #expect(try await store.read(after: appended).events.isEmpty)
        }
    }

    @Test("events behind an open transaction wait, the holder is reported, and they appear in transaction order")
    func horizon() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            #expect(before.events.map(\.stream) == ["camera-1"])
            let (opened, release) = AsyncStream.makeStream(of: Void.self)
            let (proceed, proceedContinuation) = AsyncStream.makeStream(of: Int32.self)
            let (appended, appendedContinuation) = AsyncStream.makeStream(of: Void.self)
            let (held, heldContinuation) = AsyncStream.makeStream(of: Void.self)
            // The holder takes its transaction id first and appends only after `camera-2` has
            // committed: its event gets the later position but the older transaction, so the
            // log's order (by transaction) differs from the insert order.
            async let holder: Void = store.transaction { transaction in
                // Its own pid, and a transaction id taken now (it holds the horizon from here).
                let rows = try await transaction.connection.query(
                    "SELECT pg_backend_pid(), pg_current_xact_id()::text", logger: TestDatabase.logger)
                var pid: Int32?
                for try await (backend, _) in rows.decode((Int32, String).self) { pid = backend }
                proceedContinuation.yield(pid ?? -1)
                for await _ in appended { break }
                try await transaction.append(to: "camera-slow", events: [detection()])
                heldContinuation.yield()
                for await _ in opened { break }
            }
            var holderPID: Int32 = -1
            for await pid in proceed {
                holderPID = pid
                break
            }
            try await store.append(to: "camera-2", events: [detection()])
            appendedContinuation.yield()
            for await _ in held { break }

            let page = try await store.read(after: before.next)
            #expect(page.events.isEmpty)
            #expect(page.pendingBeyondHorizon)
            // The holder reported is this test's own transaction, not any session that happens to
            // be idle in a transaction (other suites run at the same time).
            let holders = try await store.horizonHolders(limit: 100)
            let own = holders.first { $0.pid == holderPID }
            #expect(own?.application == "vigil")
            #expect(own?.state == "idle in transaction")

            release.yield()
            try await holder
            let after = try await store.readSettled(after: page.next)
            #expect(after.events.map(\.stream) == ["camera-slow", "camera-2"])
            #expect(!after.pendingBeyondHorizon)
        }
    }

    @Test("a settled read fails, rather than returning a page, while events stay behind the horizon")
    func settledReadFailsWhenHeld() async throws {
        try await TestDatabase.withStore { store in
            let (opened, release) = AsyncStream.makeStream(of: Void.self)
            let (proceed, proceedContinuation) = AsyncStream.makeStream(of: Void.self)
            async let holder: Void = store.transaction { transaction in
                try await transaction.append(to: "camera-slow", events: [detection()])
                proceedContinuation.yield()
                for await _ in opened { break }
            }
            for await _ in proceed { break }
            try await store.append(to: "camera-1", events: [detection()])
            await #expect(throws: TestSetupError.self) {
                try await store.readSettled(after: .start, patience: .milliseconds(300))
            }
            release.yield()
            try await holder
            #expect(try await store.readSettled(after: .start).events.map(\.stream) == ["camera-slow", "camera-1"])
        }
    }

    @Test("a stream read back in time is read in pages, whole however long, and stops at its point")
    func streamUpToAPointInPages() async throws {
        try await TestDatabase.withStore { store in
            var checkpoints: [Checkpoint] = []
            for index in 1...25 {
                let appended = try await store.append(
                    to: "camera-long", events: [NewEvent(type: "CameraUpdated", data: #"{"i": \#(index)}"#)])
                checkpoints += appended.checkpoints
            }
            let head = try await store.head()
            let whole = try await store.readStream("camera-long", upTo: .checkpoint(head), pageSize: 10)
            #expect(whole.map(\.version) == Array(1...25))
            let prefix = try await store.readStream("camera-long", upTo: .checkpoint(checkpoints[16]), pageSize: 10)
            #expect(prefix.map(\.version) == Array(1...17))
            let exact = try await store.readStream("camera-long", upTo: .checkpoint(checkpoints[19]), pageSize: 10)
            #expect(exact.map(\.version) == Array(1...20))
            let byTime = try await store.readStream("camera-long", upTo: .time(whole[11].recordedAt), pageSize: 7)
            #expect(byTime.map(\.version) == Array(1...12))
            let future = try await store.readStream(
                "camera-long", upTo: .time(Date().addingTimeInterval(3600)), pageSize: 5)
            #expect(future.map(\.version) == Array(1...25))
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
