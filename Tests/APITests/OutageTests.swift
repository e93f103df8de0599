import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
import VigilTesting

/// Losing every PostgreSQL session at once (what a PostgreSQL restart does to Vigil): every
/// runner must come back by itself on new connections, and what is appended afterwards must be
/// projected. (Before, the runners waited forever on their dead lease connections: a query sent
/// on a closed PostgresNIO connection never answers.)
@Suite struct OutageTests {
    static func terminateEveryOtherSession(_ store: EventStore) async throws {
        let rows = try await store.client.guardedQuery(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
            """, logger: store.logger)
        let terminated = try #require(try await rows.decode(Int64.self).first { _ in true })
        #expect(terminated > 0)
    }

    /// Posts one detection with an idempotency key, again until it is stored (a request that
    /// meets a connection just terminated gets a 503 and writes nothing twice).
    static func postUntilStored(_ client: any TestClientProtocol, key: String, at time: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let response = try await client.execute(
                uri: "/api/detections", method: .post,
                headers: [.contentType: "application/json", HTTPField.Name("Idempotency-Key")!: key],
                body: ByteBuffer(string: IngestAPITests.detection(at: time)))
            if response.status == .created || response.status == .ok {
                return try #require(try json(response)["id"] as? Int)
            }
            #expect(response.status == .serviceUnavailable, "\(response.status): \(String(buffer: response.body))")
            guard ContinuousClock.now < deadline else {
                Issue.record("the detection was not stored within 60 s")
                return -1
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func projections(_ client: any TestClientProtocol) async throws -> [[String: Any]] {
        try await client.getJSON("/api/projections")["projections"] as? [[String: Any]] ?? []
    }

    @Test func everyRunnerResumesAfterItsSessionsAreTerminated() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            let before = try await Self.postUntilStored(client, key: "before", at: "2026-11-20T10:00:00Z")
            try await waitUntil("the first detection is listed") {
                try await client.send(.get, "/api/detections/\(before)").status == .ok
            }
            try await waitUntil("every projection is live") {
                let list = try await Self.projections(client)
                return !list.isEmpty && list.allSatisfy { $0["state"] as? String == "live" }
            }

            // Twice: the second time the runners are on the connections they reconnected with.
            for round in 1...2 {
                try await Self.terminateEveryOtherSession(store)
                let after = try await Self.postUntilStored(
                    client, key: "after-\(round)", at: "2026-11-20T10:0\(round):00Z")
                try await waitUntil("the detection posted after round \(round) is listed") {
                    try await client.send(.get, "/api/detections/\(after)").status == .ok
                }
                var last: [[String: Any]] = []
                try await waitUntil("every projection is live and caught up after round \(round)") {
                    last = try await Self.projections(client)
                    return last.allSatisfy {
                        $0["state"] as? String == "live" && $0["lag_events"] as? Int == 0
                            && $0["health"] as? String == "ok"
                    }
                }
                #expect(
                    last.allSatisfy { $0["state"] as? String == "live" && $0["lag_events"] as? Int == 0 },
                    "\(last)")
            }
            // Each detection was stored exactly once, whatever the retries.
            let rows = try await store.client.guardedQuery(
                "SELECT count(*) FROM events WHERE type = \(DetectionRecorded.type)", logger: store.logger)
            #expect(try await rows.decode(Int64.self).first { _ in true } == 3)
            let ready = try await client.getJSON("/ready")
            #expect(ready["status"] as? String == "ready", "\(ready)")
        }
    }
}
