import API
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Testing
import VigilTesting

/// `GET /ready` through the real router: the session holding the log's read horizon, and a
/// 503 in its own format while the database refuses connections (then ready again by itself).
@Suite struct ReadyTests {
    @Test func readyNamesTheHorizonHolderAndIs503WhileTheDatabaseRefusesConnections() async throws {
        try await withApp { store, client in
            let logger = store.logger
            // A transaction of this database with an id, left open: it holds the horizon.
            let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
            let (held, heldContinuation) = AsyncStream.makeStream(of: Int32.self)
            async let holder: Void = store.transaction { transaction in
                try await transaction.append(to: "camera-slow", events: [detection()])
                let rows = try await transaction.connection.query("SELECT pg_backend_pid()", logger: logger)
                for try await pid in rows.decode(Int32.self) { heldContinuation.yield(pid) }
                for await _ in release { break }
            }
            var pid: Int32 = -1
            for await backend in held {
                pid = backend
                break
            }
            // /ready names the oldest holder of this database (a scratch one, its own; tests
            // beside this one hold other databases' horizons): this transaction, once any of the
            // app's own that began before it has ended (a runner's batch on a loaded machine).
            var heldBy: [String: Any]?
            try await waitUntil("/ready names the held transaction") {
                let ready = try await client.send(.get, "/ready")
                #expect(ready.status == .ok)
                heldBy = (try json(ready)["log"] as? [String: Any])?["horizon_held_by"] as? [String: Any]
                return heldBy?["pid"] as? Int == Int(pid)
            }
            #expect((heldBy?["transaction_age_seconds"] as? Double ?? -1) >= 0)
            let own = try await store.horizonHolders(limit: 1000).first { $0.pid == pid }
            #expect(own?.application == "vigil")
            #expect(own?.state == "idle in transaction")
            releaseContinuation.yield()
            try await holder
            try await waitUntil("the holder is gone from /ready") {
                let log = try await client.getJSON("/ready")["log"] as? [String: Any]
                return (log?["horizon_held_by"] as? [String: Any])?["pid"] as? Int != Int(pid)
            }

            // The database stops taking connections and every session of it ends.
            let database = try await Self.currentDatabase(store)
            try await TestDatabase.settings().withRunningClient(logger: logger) { admin in
                try await admin.query(
                    "ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS false", logger: logger)
                do {
                    _ = try await admin.query(
                        """
                        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                        WHERE datname = \(database) AND pid <> pg_backend_pid()
                        """, logger: logger)
                    var down: TestResponse?
                    try await waitUntil("/ready says 503", timeout: .seconds(30)) {
                        down = try await client.send(.get, "/ready")
                        guard let response = down, response.status == .serviceUnavailable else { return false }
                        return try json(response)["database_down_since"] is String
                    }
                    let body = try json(try #require(down))
                    #expect(body["status"] as? String == "not_ready")
                    #expect((body["checks"] as? [String: Any])?["database"] as? String == "unhealthy")
                    let error = body["database_error"] as? String ?? ""
                    #expect(error.contains("55000"), "\(body)")
                    // Every other route: a fast 503 in the seed's format.
                    let clock = ContinuousClock()
                    let started = clock.now
                    let events = try await client.send(.get, "/api/events")
                    #expect(events.status == .serviceUnavailable)
                    #expect(try json(events)["detail"] as? String == "Database unavailable")
                    #expect(clock.now - started < .seconds(5))
                } catch {
                    _ = try? await admin.query(
                        "ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS true", logger: logger)
                    throw error
                }
                try await admin.query(
                    "ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS true", logger: logger)
            }
            // Back by itself.
            try await waitUntil("/ready says ready again", timeout: .seconds(60)) {
                try await client.send(.get, "/ready").status == .ok
            }
            #expect(try await client.send(.get, "/api/events").status == .ok)
        }
    }

    static func currentDatabase(_ store: EventStore) async throws -> String {
        let rows = try await store.client.query("SELECT current_database()::text", logger: store.logger)
        for try await name in rows.decode(String.self) { return name }
        throw TestSetupError("no current database")
    }
}
