import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Testing
import VigilTesting

/// A poison event in the real read models: a detection dated year 0, appended past the API's
/// validation (as an older version of Vigil, or an import, could have), must not freeze them.
@Suite struct PoisonAPITests {
    @Test func aPoisonDetectionIsParkedReportedAndTheRestFlows() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            let first = try await client.send(
                .post, "/api/detections", json: IngestAPITests.detection(at: "2026-11-20T10:00:00Z"))
            #expect(first.status == .created)
            let firstID = try #require(try json(first)["id"] as? Int)

            // A copy of its event with an impossible date and an id of its own.
            let rows = try await store.client.query(
                "SELECT data::text FROM events WHERE type = \(DetectionRecorded.type)", logger: store.logger)
            let data = try #require(try await rows.decode(String.self).first { _ in true })
            var object = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
            object["detected_at"] = "0000-01-01T00:00:00Z"
            object["id"] = 900_001
            let poison = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            try await store.append(
                to: DetectionRecorded.stream(cameraId: "porch"),
                events: [NewEvent(type: DetectionRecorded.type, data: poison)])

            // Detections after it keep flowing.
            let second = try await client.send(
                .post, "/api/detections", json: IngestAPITests.detection(at: "2026-11-20T10:05:00Z"))
            #expect(second.status == .created)
            let secondID = try #require(try json(second)["id"] as? Int)
            try await waitUntil("the detection after the poison is listed") {
                try await client.send(.get, "/api/detections/\(secondID)").status == .ok
            }
            #expect(try await client.send(.get, "/api/detections/\(firstID)").status == .ok)
            #expect(try await client.send(.get, "/api/detections/900001").status == .notFound)

            // /api/projections says which read models lack it, and /ready is loudly degraded.
            // Every read model that stores the date parks the event on its own schedule: until
            // it has, it retries the page and is "failing" (honestly). Wait for all of them, and
            // for detections to be past everything (the pipeline keeps appending its own events
            // meanwhile, which detections skips a page later): a projection stuck at the poison
            // would never get there.
            var detections: [String: Any] = [:]
            var list: [[String: Any]] = []
            try await waitUntil("every read model has parked the event, none is failing, detections is caught up") {
                list = try await client.getJSON("/api/projections")["projections"] as? [[String: Any]] ?? []
                detections = list.first { $0["name"] as? String == "detections" } ?? [:]
                return detections["parked_events"] as? Int == 1 && detections["lag_events"] as? Int == 0
                    && list.allSatisfy { $0["health"] as? String != "failing" }
            }
            let parkedBy = Set(list.filter { $0["parked_events"] as? Int == 1 }.compactMap { $0["name"] as? String })
            #expect(parkedBy.isSuperset(of: ["detections", "cameras", "analytics"]), "\(list)")
            #expect(detections["health"] as? String == "degraded")
            #expect(detections["lag_events"] as? Int == 0)
            let parked = try await client.getJSON("/api/projections/detections/parked")
            let entries = try #require(parked["parked"] as? [[String: Any]])
            #expect(entries.count == 1)
            #expect(entries.first?["type"] as? String == DetectionRecorded.type)
            #expect((entries.first?["error"] as? String)?.contains("out of range") == true, "\(entries)")

            let ready = try await client.send(.get, "/ready")
            #expect(ready.status == .ok)
            let readiness = try json(ready)
            #expect(readiness["status"] as? String == "degraded")
            #expect((readiness["checks"] as? [String: Any])?["projections"] as? String == "degraded")
            let named = (readiness["projections"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(named.contains("detections"), "\(readiness)")

            #expect(try await client.send(.post, "/api/projections/nope/parked/retry").status == .notFound)
            let retry = try await client.send(.post, "/api/projections/detections/parked/retry")
            #expect(retry.status == .accepted)
            #expect(try json(retry)["retrying"] as? Int == 1)
        }
    }
}
