import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Projections
import Redis
import Testing
import VigilTesting

@testable import API

/// The seeds' health routes: `/api/system/health`, `/health/live`, `/health/ready`.
@Suite struct SystemHealthTests {
    @Test("healthy: every service says so, each projection with its lag, the workers listed")
    func healthy() async throws {
        try await withApp(configure: {
            $0.redis = sharedRedisSettings()
            $0.redisPrefix = PipelineTests.prefix()
        }) { store, client in
            let live = try await client.send(.get, "/api/system/health/live")
            let alive = try json(live)["status"] as? String
            #expect(live.status == .ok && alive == "alive")
            // At start a runner may not hold its lease yet: degraded (503) until every one does.
            var body: [String: Any] = [:]
            try await waitUntil("/api/system/health says healthy") {
                let response = try await client.send(.get, "/api/system/health")
                body = try json(response)
                return response.status == .ok && body["status"] as? String == "healthy"
            }
            let services = try #require(body["services"] as? [String: [String: Any]], "\(body)")
            #expect(services["database"]?["status"] as? String == "healthy")
            let head = (services["database"]?["details"] as? [String: Any])?["log_head"] as? String
            #expect(head?.count == 32, "\(body)")
            #expect(services["redis"]?["status"] as? String == "healthy")
            #expect((services["redis"]?["details"] as? [String: Any])?["latency_ms"] is Double, "\(body)")
            #expect(services["projections"]?["status"] as? String == "healthy")
            let projections = try #require(services["projections"]?["details"] as? [String: [String: Any]])
            let names = try await store.projectionStatuses().map(\.name)
            #expect(Set(projections.keys) == Set(names), "\(projections.keys)")
            #expect(projections["cameras"]?["state"] as? String == "live")
            #expect(projections["cameras"]?["lag_events"] is Int)
            #expect((body["timestamp"] as? String)?.hasSuffix("Z") == true)

            let ready = try await client.send(.get, "/api/system/health/ready")
            let readiness = try json(ready)
            #expect(ready.status == .ok && readiness["ready"] as? Bool == true)
            #expect(readiness["status"] as? String == "ready", "\(readiness)")
            let workers = try #require(readiness["workers"] as? [[String: Any]])
            #expect(
                workers.contains { $0["name"] as? String == "projection:cameras" && $0["running"] as? Bool == true })
            #expect(workers.contains { $0["name"] as? String == "analysis_worker" && $0["running"] as? Bool == true })
        }
    }

    @Test("Redis not answering: degraded, 503 on /api/system/health, still ready (200) on /health/ready")
    func redisDown() async throws {
        // A port nothing listens on.
        let socket = TestRedisServer.freePort()
        var settings = try #require(sharedRedisSettings())
        settings.port = socket
        let redis = settings
        try await withApp(configure: {
            $0.redis = redis
            $0.runHeuristicAnalyzer = false
        }) { _, client in
            var body: [String: Any] = [:]
            try await waitUntil("the database healthy and Redis not") {
                let response = try await client.send(.get, "/api/system/health")
                body = try json(response)
                let services = body["services"] as? [String: [String: Any]]
                return response.status == .serviceUnavailable
                    && services?["database"]?["status"] as? String == "healthy"
            }
            let services = try #require(body["services"] as? [String: [String: Any]])
            #expect(body["status"] as? String == "degraded", "\(body)")
            #expect(services["redis"]?["status"] as? String == "unhealthy", "\(body)")
            let ready = try await client.send(.get, "/api/system/health/ready")
            let readiness = try json(ready)
            #expect(ready.status == .ok && readiness["status"] as? String == "degraded", "\(readiness)")
            #expect(readiness["ready"] as? Bool == true)
        }
    }

    @Test("PostgreSQL refusing connections: unhealthy and not ready, both 503 in their own format")
    func databaseDown() async throws {
        try await withApp { store, client in
            let logger = store.logger
            let database = try await ReadyTests.currentDatabase(store)
            try await TestDatabase.settings().withRunningClient(logger: logger) { admin in
                try await admin.query("ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS false", logger: logger)
                do {
                    _ = try await admin.query(
                        """
                        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                        WHERE datname = \(database) AND pid <> pg_backend_pid()
                        """, logger: logger)
                    var body: [String: Any] = [:]
                    try await waitUntil("/api/system/health says unhealthy", timeout: .seconds(30)) {
                        let response = try await client.send(.get, "/api/system/health")
                        body = try json(response)
                        return response.status == .serviceUnavailable && body["status"] as? String == "unhealthy"
                    }
                    let services = try #require(body["services"] as? [String: [String: Any]], "\(body)")
                    #expect(services["database"]?["status"] as? String == "unhealthy")
                    #expect(services["projections"]?["status"] as? String == "unknown")
                    let ready = try await client.send(.get, "/api/system/health/ready")
                    let readiness = try json(ready)
                    #expect(ready.status == .serviceUnavailable, "\(readiness)")
                    #expect(readiness["ready"] as? Bool == false && readiness["status"] as? String == "not_ready")
                    let live = try await client.send(.get, "/api/system/health/live")
                    #expect(live.status == .ok)
                } catch {
                    _ = try? await admin.query(
                        "ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS true", logger: logger)
                    throw error
                }
                try await admin.query("ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS true", logger: logger)
            }
            try await waitUntil("healthy again by itself", timeout: .seconds(60)) {
                try await client.send(.get, "/api/system/health/ready").status == .ok
            }
        }
    }

    @Test("the /ws/log tail's breaker opens while its reads fail, with the error, and closes once one succeeds")
    func tailBreaker() async throws {
        try await withApp { store, client in
            let tail = { @Sendable in
                try await client.getJSON("/api/system/health/websocket")["event_broadcaster"] as? [String: Any] ?? [:]
            }
            #expect(try await tail()["state"] as? String == "closed")
            // Every read of the log fails while its table is away (the tail reads at least every 5 s).
            try await store.client.query("ALTER TABLE events RENAME TO events_away", logger: store.logger)
            var open: [String: Any] = [:]
            do {
                try await waitUntil("the breaker is open", timeout: .seconds(60)) {
                    open = try await tail()
                    return open["state"] as? String == "open"
                }
            } catch {
                try await store.client.query("ALTER TABLE events_away RENAME TO events", logger: store.logger)
                throw error
            }
            try await store.client.query("ALTER TABLE events_away RENAME TO events", logger: store.logger)
            #expect((open["failures"] as? Int ?? 0) >= 1, "\(open)")
            let failure = open["last_failure"] as? [String: Any]
            #expect((failure?["error"] as? String)?.contains("events") == true, "\(open)")
            #expect(failure?["at"] is String, "\(open)")
            try await waitUntil("the breaker is closed again", timeout: .seconds(60)) {
                try await tail()["state"] as? String == "closed"
            }
            #expect(try await tail()["failures"] as? Int == 0)
        }
    }
}
