import API
import Domain
import EventStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// Runs the real application (router, middleware, services) against a fresh database.
func withApp(
    configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (EventStore, any TestClientProtocol) async throws -> Void
) async throws {
    try await withScratchDatabase { store, scratch in
        try await runApp(on: scratch, configure: configure) { try await body(store, $0) }
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "vigil.api-tests")
    logger.logLevel = .error
    return logger
}()

/// A fresh database (migrated) for one test, dropped afterwards; the whole of it (the database,
/// its clients, an application on it) under ``withHangWatch(_:logs:_:)``, with markers of
/// where the test got to among the records.
func withScratchDatabase(_ body: @Sendable (EventStore, PostgresSettings) async throws -> Void) async throws {
    guard ProcessInfo.processInfo.environment["VIGIL_PG_PORT"] != nil else {
        Issue.record("VIGIL_PG_PORT is not set: run the tests through tools/test, which starts PostgreSQL")
        return
    }
    let settings = try PostgresSettings.fromEnvironment()
    let logs = RecentLogs()
    try await RecentLogs.$current.withValue(logs) {
        try await withHangWatch("its scratch database", logs: logs) {
            try await ScratchDatabase.with(settings: settings, prefix: "vigil_apitest", logger: testLogger) {
                client, scratch in
                logs.append("--- scratch database \(scratch.database) is migrated: the test begins")
                try await body(EventStore(client: client, logger: testLogger), scratch)
                logs.append("--- the test is done with its scratch database: its client stops, then it is dropped")
            }
            logs.append("--- the scratch database is dropped")
        }
    }
}

/// The whole server (router, runners, workers) on `database`, for the time of `body`.
func runApp(
    on database: PostgresSettings,
    configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    var configuration = testConfiguration(database, live: false)
    configure(&configuration)
    try await testApplication(configuration, .router, body)
}

/// How every test's server is configured: on `database`, listening on an ephemeral port of
/// 127.0.0.1 if `live` (a real socket), else served through the router alone.
func testConfiguration(_ database: PostgresSettings, live: Bool) -> ServerConfiguration {
    var database = database
    // The runners' leases (two per runner) and 8 for requests; suites run at once, so keep well
    // under the server's limit.
    database.maximumConnections = 40
    var configuration =
        live
        ? ServerConfiguration(host: "127.0.0.1", port: 0, postgres: database) : ServerConfiguration(postgres: database)
    configuration.projectionOptions = .init(
        batchSize: 500, leaseRetry: .milliseconds(100), errorRetry: .milliseconds(100))
    // Suites run at once on two cores: a read model may take longer than a server's 10 s to
    // apply a write, and a test asserting on the answer would see a 202.
    configuration.readYourWritesTimeout = .seconds(60)
    // Dozens of servers share two cores while the suites run: a probe that gets no answer in
    // 3 s is a starved machine, not a hung PostgreSQL. Outages in the tests are refused or
    // terminated sessions, which still count at once.
    configuration.probeTimeoutsToGoDown = 40
    return configuration
}

/// Builds the application from `configuration` and runs `body` with a client of it (`setup`:
/// through the router, or over a socket). Its log records go to the test's ``RecentLogs``
/// (see ``withScratchDatabase(_:)``).
func testApplication(
    _ configuration: ServerConfiguration, _ setup: TestingSetup,
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    let logs = RecentLogs.current ?? RecentLogs()
    let app = try buildApplication(configuration, logger: logs.logger(over: testLogger))
    logs.append("--- the application starts")
    try await app.test(setup) { client in
        try await body(client)
        logs.append("--- the test's body returned: the application shuts down")
    }
    logs.append("--- the application has stopped")
}

func json(_ response: TestResponse) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
    return try #require(object as? [String: Any])
}

extension TestClientProtocol {
    /// GET that retries until `ready` holds: another test's open transaction anywhere on the
    /// server can hold the log's horizon for a moment. Throws when it never does.
    func getEventually(_ uri: String, until ready: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var body: [String: Any] = [:]
        try await waitUntil("GET \(uri) is as expected") {
            let response = try await execute(uri: uri, method: .get, headers: [:], body: nil)
            #expect(response.status == .ok)
            body = try json(response)
            return ready(body)
        }
        return body
    }
}

@Suite("Log API")
struct LogAPITests {
    @Test("GET /health is alive and GET /ready reports the database and the log head")
    func health() async throws {
        try await withApp { _, client in
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
            #expect(try json(health)["status"] as? String == "alive")
            let ready = try await client.execute(uri: "/ready", method: .get)
            #expect(ready.status == .ok)
            let body = try json(ready)
            #expect(body["status"] as? String == "ready")
            #expect((body["log"] as? [String: Any])?["head"] as? String == Checkpoint.start.token)
        }
    }

    @Test("GET /api/log pages through the log by checkpoint, with filters")
    func pagesThroughTheLog() async throws {
        try await withApp { store, client in
            try await store.append(
                to: "camera-front_door",
                events: (0..<3).map { NewEvent(type: "Noted", data: #"{"n":\#($0)}"#) }
            )
            try await store.append(
                to: "secevent-1",
                events: [
                    try NewEvent(
                        SecurityEventOpened(
                            id: 1, cameraId: "front_door", batchId: "b-1", startedAt: Date(), detectionIds: [],
                            objectTypes: []),
                        metadata: EventMetadata(actor: "tests"))
                ])
            try await store.append(to: "camera-back", events: [NewEvent(type: "Noted", data: #"{"n":9}"#)])

            let all = try await client.getEventually("/api/log") { ($0["count"] as? Int) == 5 }
            let events = try #require(all["events"] as? [[String: Any]])
            #expect(
                events.map { $0["stream"] as? String } == [
                    "camera-front_door", "camera-front_door", "camera-front_door", "secevent-1", "camera-back",
                ])
            #expect((events[0]["data"] as? [String: Any])?["n"] as? Int == 0)
            #expect(events[0]["version"] as? Int == 1)
            #expect(all["has_more"] as? Bool == false)
            #expect(all["next_checkpoint"] as? String == events[4]["checkpoint"] as? String)

            let first = try json(try await client.execute(uri: "/api/log?limit=2", method: .get))
            #expect(first["count"] as? Int == 2)
            #expect(first["has_more"] as? Bool == true)
            let next = try #require(first["next_checkpoint"] as? String)
            #expect(next == events[1]["checkpoint"] as? String)
            let second = try json(try await client.execute(uri: "/api/log?limit=2&after=\(next)", method: .get))
            let secondEvents = try #require(second["events"] as? [[String: Any]])
            #expect(secondEvents.map { $0["event_id"] as? String } == events[2...3].map { $0["event_id"] as? String })

            let opened = try json(try await client.execute(uri: "/api/log?types=SecurityEventOpened", method: .get))
            #expect((opened["events"] as? [[String: Any]])?.map { $0["type"] as? String } == ["SecurityEventOpened"])
            let cameras = try json(try await client.execute(uri: "/api/log?stream_prefix=camera-", method: .get))
            #expect(cameras["count"] as? Int == 4)
        }
    }

    @Test("GET /api/streams/{stream} reads one stream in version order; an unknown stream is a 404")
    func readsAStream() async throws {
        try await withApp { store, client in
            try await store.append(
                to: "camera-garage",
                events: (1...4).map { NewEvent(type: "Noted", data: #"{"n":\#($0)}"#) }
            )
            let page = try json(
                try await client.execute(uri: "/api/streams/camera-garage?from_version=1&limit=2", method: .get))
            #expect(page["version"] as? Int == 4)
            #expect((page["events"] as? [[String: Any]])?.map { $0["version"] as? Int } == [2, 3])
            #expect(page["has_more"] as? Bool == true)
            #expect(page["next_version"] as? Int == 3)

            let missing = try await client.execute(uri: "/api/streams/camera-nowhere", method: .get)
            #expect(missing.status == .notFound)
            #expect(try json(missing)["detail"] as? String == "Stream camera-nowhere not found")
        }
    }

    @Test("bad input gets the seed's error format: 400 for a malformed checkpoint, 422 for a bad limit, 404 JSON")
    func errors() async throws {
        try await withApp { _, client in
            let malformed = try await client.execute(uri: "/api/log?after=not-a-checkpoint", method: .get)
            #expect(malformed.status == .badRequest)
            let detail = try #require(try json(malformed)["detail"] as? String)
            #expect(detail.hasPrefix("Invalid checkpoint: "))

            // Well formed, but beyond the read horizon (no log read handed it out): 409.
            let beyond = try await client.execute(uri: "/api/log?after=7fffffffffffffff0000000000000001", method: .get)
            #expect(beyond.status == .conflict)
            let refusal = try #require(try json(beyond)["detail"] as? String)
            #expect(refusal.hasPrefix("Checkpoint not readable yet: "), "\(refusal)")
            #expect(refusal.contains("beyond the log's read horizon"))

            for (query, type) in [
                ("limit=0", "greater_than_equal"), ("limit=1001", "less_than_equal"), ("limit=ten", "int_parsing"),
            ] {
                let response = try await client.execute(uri: "/api/log?\(query)", method: .get)
                #expect(response.status == .unprocessableContent)
                let issues = try #require(try json(response)["detail"] as? [[String: Any]])
                #expect(issues.count == 1)
                #expect(issues[0]["loc"] as? [String] == ["query", "limit"])
                #expect(issues[0]["type"] as? String == type)
                #expect((issues[0]["msg"] as? String)?.isEmpty == false)
            }

            let unknown = try await client.execute(uri: "/api/nothing-here", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try json(unknown)["detail"] as? String != nil)
        }
    }
}

@Suite("Projections API")
struct ProjectionsAPITests {
    @Test("GET /api/projections shows each projection's checkpoint, lag and state")
    func status() async throws {
        try await withApp { store, client in
            try await store.append(
                to: "camera-a", events: (0..<3).map { NewEvent(type: "Noted", data: #"{"n":\#($0)}"#) })
            // A projection that has a checkpoint at the start and no instance running it.
            try await store.client.query("INSERT INTO projections (name) VALUES ('demo')", logger: store.logger)
            try await store.client.query(
                "INSERT INTO projection_checkpoints (name, generation) VALUES ('demo', 1)",
                logger: store.logger
            )
            func demo(_ body: [String: Any]) -> [String: Any]? {
                (body["projections"] as? [[String: Any]])?.first { $0["name"] as? String == "demo" }
            }
            let body = try await client.getEventually("/api/projections") { body in
                demo(body)?["lag_events"] as? Int == 3
            }
            // The read models the server runs, and the stopped one.
            let projections = try #require(body["projections"] as? [[String: Any]])
            #expect(
                Set(projections.compactMap { $0["name"] as? String })
                    == [
                        "demo", "cameras", "detections", "security_events", "analytics", "api_keys", "audit",
                        "pipeline", "zones", "alert_rules", "alerts", "notifications", "entities", "batch_aggregator",
                        "alert_engine",
                    ])
            #expect(body["count"] as? Int == 15)
            let demo = try #require(demo(body))
            #expect(demo["state"] as? String == "stopped")
            for live in projections where live["name"] as? String != "demo" {
                #expect(live["state"] as? String == "live")
            }
            #expect(demo["checkpoint"] as? String == Checkpoint.start.token)
            #expect(demo["lag_events"] as? Int == 3)
            #expect(demo["events_applied"] as? Int == 0)
            #expect(demo["last_error"] is NSNull)
            #expect(demo["generation"] as? Int == 1)
            #expect(demo["rebuild"] is NSNull)
        }
    }

    /// Asking again while a rebuild waits is the same rebuild, not another generation; an
    /// unknown name is a 404 and writes nothing. No runner here: the rebuild stays requested.
    @Test("POST …/rebuild: asking twice is the same generation; an unknown name is a 404")
    func rebuildRequests() async throws {
        try await withApp(configure: { $0.runProjections = false }) { store, client in
            let first = try await client.send(.post, "/api/projections/detections/rebuild")
            #expect(first.status == .accepted)
            let generation = try #require(try json(first)["generation"] as? Int)
            #expect(generation == 2)
            // As if the rebuild had made progress: asking again must not start it over.
            try await store.client.query(
                """
                UPDATE projection_checkpoints SET events_applied = 42
                WHERE name = 'detections' AND generation = \(Int32(generation))
                """, logger: store.logger)
            let again = try await client.send(.post, "/api/projections/detections/rebuild")
            #expect(again.status == .accepted)
            #expect(try json(again)["generation"] as? Int == generation)
            let statuses = try await client.getJSON("/api/projections")["projections"] as? [[String: Any]] ?? []
            let detections = statuses.first { $0["name"] as? String == "detections" }
            #expect((detections?["rebuild"] as? [String: Any])?["generation"] as? Int == generation)
            #expect((detections?["rebuild"] as? [String: Any])?["events_applied"] as? Int == 42, "\(statuses)")
            #expect(detections?["generation"] as? Int == 1)

            let unknown = try await client.send(.post, "/api/projections/nope/rebuild")
            #expect(unknown.status == .notFound)
            #expect(try json(unknown)["detail"] as? String == "Projection nope not found")
            let rows = try await store.client.query(
                "SELECT count(*)::int FROM projections WHERE name = 'nope'", logger: store.logger)
            #expect(try await rows.decode(Int.self).first { _ in true } == 0)
        }
    }
}
