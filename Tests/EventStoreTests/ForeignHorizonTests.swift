import Foundation
import PostgresNIO
import Synchronization
import Synthetic
import Testing
import VigilTesting

@testable import EventStore

/// The read horizon leaves out transactions of other databases of the cluster (``ReadHorizon``).
@Suite struct ForeignHorizonTests {
    /// Runs `body` in another database of the cluster, on one connection.
    static func inAnotherDatabase(_ body: @escaping @Sendable (PostgresClient) async throws -> Void) async throws {
        try await ScratchDatabase.with(
            settings: try TestDatabase.settings(), prefix: "vigil_test", logger: TestDatabase.logger
        ) { other, _ in try await body(other) }
    }

    /// Begins a transaction with an id on `connection`; returns its backend pid and id.
    static func begin(_ connection: PostgresConnection) async throws -> (pid: Int32, transaction: UInt64) {
        try await connection.query("BEGIN", logger: TestDatabase.logger)
        let rows = try await connection.query(
            "SELECT pg_backend_pid(), pg_current_xact_id()::text", logger: TestDatabase.logger)
        for try await (pid, transaction) in rows.decode((Int32, String).self) {
            return (pid, UInt64(transaction) ?? 0)
        }
        throw CancellationError()
    }

    /// Runs `body` inside a transaction with an id on `connection` (its pid and id given), then
    /// rolls it back, also when `body` throws.
    static func whileOpen(
        on connection: PostgresConnection, _ body: ((pid: Int32, transaction: UInt64)) async throws -> Void
    ) async throws {
        let open = try await begin(connection)
        do {
            try await body(open)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: TestDatabase.logger)
            throw error
        }
        try await connection.query("ROLLBACK", logger: TestDatabase.logger)
    }

    @Test("a transaction open in another database of the cluster holds nothing back, nor is it named")
    func anotherDatabasesTransactionIsNotAHolder() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            try await Self.inAnotherDatabase { other in
                try await other.withConnection { connection in
                    try await Self.whileOpen(on: connection) { foreign in
                        let appended = try await store.append(to: "camera-2", events: [detection()]).checkpoints[0]
                        #expect(appended.transactionID > foreign.transaction)
                        #expect(try await store.foreignTransactions().contains(foreign.transaction))
                        // Read at once, not "settled": nothing of this database is in flight.
                        let page = try await store.read(after: before.next)
                        #expect(page.events.map(\.checkpoint) == [appended])
                        #expect(!page.pendingBeyondHorizon)
                        #expect(try await store.head() == appended)
                        #expect(try await store.read(after: appended).events.isEmpty)
                        let holders = try await store.horizonHolders(limit: 100)
                        #expect(!holders.contains { $0.pid == foreign.pid }, "\(holders)")
                    }
                }
            }
        }
    }

    @Test("a transaction of this database still holds readers back while a foreign one is open")
    func ownTransactionStillHolds() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            try await Self.inAnotherDatabase { other in
                try await other.withConnection { connection in
                    try await Self.whileOpen(on: connection) { _ in
                        try await store.client.withConnection { own in
                            try await Self.whileOpen(on: own) { local in
                                let appended = try await store.append(to: "camera-2", events: [detection()])
                                let page = try await store.read(after: before.next)
                                #expect(page.events.isEmpty)
                                #expect(page.pendingBeyondHorizon)
                                #expect(try await store.head() == before.next)
                                do {
                                    _ = try await store.read(after: appended.checkpoints[0])
                                    Issue.record("a checkpoint beyond this database's open transaction must be refused")
                                } catch LogReadError.beyondHorizon(_, let horizon) {
                                    #expect(horizon == local.transaction)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Set once, read by many tasks; counts the appends.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        let appended = Atomic<Int>(0)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    /// The time limit only guards against a hang. Alone these take 6–8 s. In the suite they
    /// take 50–90 s: their 300 appends take 30–40 s (~100 ms a commit on the loaded disk,
    /// measured) and their scratch databases ~20 s. With the machine loaded further they took
    /// 104–111 s, and beside a release build more than 2 minutes (session 40).
    static let hangGuard: TimeLimitTrait = .timeLimit(.minutes(5))

    @Test(
        "while other databases' transactions start and end, no read refuses a checkpoint a read handed out, and none skips an event",
        hangGuard
    )
    func horizonNeverMovesBack() async throws {
        try await TestDatabase.withStore { store in
            try await Self.inAnotherDatabase { other in
                try await Self.assertHorizonNeverMovesBack(store, sideTransactionsOn: other, marked: false)
            }
        }
    }

    @Test(
        "while read models' runners' transactions start and end in this database, no read refuses a checkpoint a read handed out, and none skips an event",
        hangGuard
    )
    func horizonNeverMovesBackPastReadModels() async throws {
        try await TestDatabase.withStore { store in
            try await Self.assertHorizonNeverMovesBack(store, sideTransactionsOn: store.client, marked: true)
        }
    }

    /// Transactions that a horizon leaves out (on `client`: another database's, or this one's
    /// in sessions `marked` as a read model's runner) start and end at any moment while events
    /// are appended and read: no read refuses a checkpoint a read handed out, none skips one.
    static func assertHorizonNeverMovesBack(
        _ store: EventStore, sideTransactionsOn client: PostgresClient, marked: Bool
    ) async throws {
        let done = Flag()
        try await withThrowingTaskGroup(of: Int.self) { group in
            // Side transactions, each with an id, back to back on two connections: one
            // short (0–3 ms), one longer (0–30 ms), so they overlap and end at any moment.
            // At least 3 s, 100 of the short ones and 300 appends, whatever the machine's load.
            for longest in [3_000, 30_000] {
                group.addTask {
                    try await client.withConnection { connection in
                        if marked {
                            try await connection.query(
                                "SET application_name = 'vigil read model'", logger: TestDatabase.logger)
                        }
                        let start = ContinuousClock.now
                        var count = 0
                        while !done.isSet {
                            _ = try await Self.begin(connection)
                            try await Task.sleep(for: .microseconds(Int.random(in: 0...longest)))
                            try await connection.query("COMMIT", logger: TestDatabase.logger)
                            count += 1
                            if longest == 3_000, count >= 100, ContinuousClock.now - start > .seconds(3),
                                done.appended.load(ordering: .relaxed) >= 300
                            {
                                done.set()
                            }
                        }
                        // Unmarked before the connection goes back to the pool (the appends'
                        // pool: a marked session may not append).
                        if marked { try await connection.query("RESET application_name", logger: TestDatabase.logger) }
                        return count
                    }
                }
            }
            // Appends to this database, so events keep arriving beyond every horizon.
            for writer in 0..<2 {
                group.addTask {
                    var count = 0
                    while !done.isSet {
                        try await store.append(to: "camera-\(writer)", events: [detection(sequence: count)])
                        count += 1
                        done.appended.add(1, ordering: .relaxed)
                    }
                    return 0
                }
            }
            // Readers: each carries on from the last checkpoint it was handed (a page's
            // `next` or `head()`), which must never be refused.
            for reader in 0..<2 {
                group.addTask {
                    var checkpoint = Checkpoint.start
                    var seen: [Checkpoint] = []
                    while !done.isSet {
                        let page = try await store.read(after: checkpoint, limit: 50)
                        seen += page.events.map(\.checkpoint)
                        checkpoint = page.next
                        if reader == 1 {
                            // The head is handed out too: never behind, never refused.
                            let head = try await store.head()
                            #expect(head >= checkpoint, "head \(head) behind a handed-out \(checkpoint)")
                            _ = try await store.read(after: head, limit: 1)
                        }
                    }
                    // Everything written so far, once each, in order.
                    seen += try await store.readSettled(after: checkpoint).events.map(\.checkpoint)
                    let all = try await store.readSettled(after: .start).events.map(\.checkpoint)
                    #expect(seen == Array(all.prefix(seen.count)), "reader \(reader)")
                    #expect(seen.count >= 300, "reader \(reader) read")
                    return 0
                }
            }
            var side = 0
            while let count = try await group.next() { side += count }
            #expect(side >= 100, "the side transactions ran")
        }
    }
}
