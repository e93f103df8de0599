import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import VigilTesting

/// `/api/entities`: sightings reported by a re-identification worker, the entities and their
/// history, trust.
@Suite struct EntitiesTests {
    static func sight(_ client: any TestClientProtocol, _ body: String) async throws -> [String: Any] {
        let response = try await client.send(.post, "/api/entities/sightings", json: body)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try json(response)
    }

    @Test("Sightings of one entity reported at once are all stored (once 409s)")
    func concurrentSightings() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "front_door")
            let first = try await Self.sight(client, #"{"entity_type": "person", "camera_id": "front_door"}"#)
            let id = try #require(first["entity_id"] as? String)
            let statuses = try await statusesOfConcurrent(25) {
                try await client.send(
                    .post, "/api/entities/sightings", json: #"{"entity_id": "\#(id)", "camera_id": "front_door"}"#
                ).status
            }
            #expect(statuses == Array(repeating: 201, count: 25), "\(statuses)")
            try await waitUntil("all 26 sightings are in its history") {
                try await client.getJSON("/api/entities/\(id)/history")["count"] as? Int == 26
            }
        }
    }

    @Test("Sightings make and grow an entity; its history is chronological, with thumbnails and camera names")
    func sightingsAndHistory() async throws {
        try await withApp { _, client in
            for camera in ["front_door", "backyard"] { try await IngestAPITests.register(client, camera) }
            let detection = try await client.send(
                .post, "/api/detections",
                json: IngestAPITests.detection(
                    camera: "backyard", object: "person", extra: #", "thumbnail_path": "/thumbs/7.jpg""#))
            let detectionId = try #require(try json(detection)["id"] as? Int)
            let first = try await Self.sight(
                client,
                #"{"entity_type": "person", "camera_id": "front_door", "seen_at": "2026-11-20T10:00:00Z", "attributes": {"clothing": "red jacket"}}"#
            )
            #expect(first["is_new"] as? Bool == true)
            let id = try #require(first["entity_id"] as? String)
            let second = try await Self.sight(
                client,
                #"{"entity_id": "\#(id)", "camera_id": "backyard", "detection_id": \#(detectionId), "similarity": 0.91, "seen_at": "2026-11-20T10:05:00Z"}"#
            )
            #expect(second["is_new"] as? Bool == false)
            // Reported late: seen before the first.
            _ = try await Self.sight(
                client,
                #"{"entity_id": "\#(id)", "entity_type": "person", "camera_id": "front_door", "similarity": 0.8, "seen_at": "2026-11-20T09:55:00Z"}"#
            )
            let entity = try await client.getJSON("/api/entities/\(id)")
            #expect(entity["appearance_count"] as? Int == 3)
            #expect(entity["cameras_seen"] as? [String] == ["backyard", "front_door"])
            #expect(entity["first_seen"] as? String == "2026-11-20T09:55:00.000000Z")
            #expect(entity["last_seen"] as? String == "2026-11-20T10:05:00.000000Z")
            #expect(entity["thumbnail_url"] as? String == "/thumbs/7.jpg")
            #expect(entity["trust_status"] as? String == "unknown" && entity["entity_type"] as? String == "person")

            let history = try await client.getJSON("/api/entities/\(id)/history")
            #expect(history["entity_id"] as? String == id && history["count"] as? Int == 3)
            let appearances = try #require(history["appearances"] as? [[String: Any]])
            #expect(
                appearances.map { $0["timestamp"] as? String } == [
                    "2026-11-20T09:55:00.000000Z", "2026-11-20T10:00:00.000000Z", "2026-11-20T10:05:00.000000Z",
                ])
            #expect(appearances[1]["attributes"] as? [String: String] == ["clothing": "red jacket"])
            #expect(appearances[2]["camera_name"] as? String == "backyard")
            #expect(appearances[2]["detection_id"] as? Int == detectionId)
            #expect((appearances[2]["similarity_score"] as? NSNumber)?.doubleValue == 0.91)
            #expect(appearances[2]["thumbnail_url"] as? String == "/thumbs/7.jpg")
            let page = try await client.getJSON("/api/entities/\(id)/history?limit=1&offset=1")
            #expect((page["appearances"] as? [[String: Any]])?.count == 1 && page["count"] as? Int == 3)
            #expect(try await client.send(.get, "/api/entities/nobody/history").status == .notFound)
        }
    }

    @Test("Bad sightings get a 422, an unknown entity a 404, another type a 409, and nothing is stored")
    func badSightings() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "front_door")
            let car = try await Self.sight(client, #"{"entity_type": "vehicle", "camera_id": "front_door"}"#)
            let id = try #require(car["entity_id"] as? String)
            for body in [
                #"{"entity_type": "ghost", "camera_id": "front_door"}"#,
                #"{"camera_id": "front_door"}"#,
                #"{"entity_type": "person", "camera_id": "nowhere"}"#,
                #"{"entity_type": "person", "camera_id": "front_door", "similarity": 1.5}"#,
                #"{"entity_type": "person", "camera_id": "front_door", "seen_at": "9999-01-01T00:00:00Z"}"#,
                #"{"entity_type": "person", "camera_id": "front_door", "detection_id": 0}"#,
                #"{"entity_type": "person", "camera_id": "front_door", "attributes": [1]}"#,
                #"{"entity_type": "person", "camera_id": "front_door", "colour": "red"}"#,
            ] {
                let refused = try await client.send(.post, "/api/entities/sightings", json: body)
                #expect(refused.status == .unprocessableContent, "\(body): \(String(buffer: refused.body))")
            }
            let unknown = try await client.send(
                .post, "/api/entities/sightings", json: #"{"entity_id": "nobody", "camera_id": "front_door"}"#)
            #expect(unknown.status == .notFound)
            let otherType = try await client.send(
                .post, "/api/entities/sightings",
                json: #"{"entity_id": "\#(id)", "entity_type": "person", "camera_id": "front_door"}"#)
            #expect(otherType.status == .conflict)
            #expect(try json(otherType)["detail"] as? String == "Entity \(id) is a vehicle, not a person")
            #expect(try await IngestAPITests.count(store, type: EntitySighted.type) == 1)
        }
    }

    @Test("The list filters by type, camera and time, pages by cursor; trust changes are audited")
    func listAndTrust() async throws {
        try await withApp { _, client in
            for camera in ["front_door", "garage"] { try await IngestAPITests.register(client, camera) }
            var ids: [String] = []
            for (n, (type, camera)) in [("person", "front_door"), ("vehicle", "garage"), ("person", "garage")]
                .enumerated()
            {
                let sighted = try await Self.sight(
                    client,
                    #"{"entity_type": "\#(type)", "camera_id": "\#(camera)", "seen_at": "2026-11-2\#(n)T12:00:00Z"}"#)
                ids.append(try #require(sighted["entity_id"] as? String))
            }
            func listed(_ query: String) async throws -> [String] {
                (try await client.getJSON("/api/entities?\(query)")["entities"] as? [[String: Any]] ?? [])
                    .compactMap { $0["id"] as? String }
            }
            #expect(try await listed("") == ids.reversed())  // most recently seen first
            #expect(try await listed("entity_type=person") == [ids[2], ids[0]])
            #expect(try await listed("camera_id=garage") == [ids[2], ids[1]])
            #expect(try await listed("since=2026-11-21T00:00:00Z") == [ids[2], ids[1]])
            #expect(try await client.send(.get, "/api/entities?entity_type=ghost").status == .unprocessableContent)
            let (pages, counts) = try await client.walk("/api/entities", key: "entities", limit: 1)
            #expect(pages.flatMap { $0 }.compactMap { $0["id"] as? String } == ids.reversed())
            #expect(counts.allSatisfy { $0 == 3 })

            let trusted = try await client.send(
                .patch, "/api/entities/\(ids[0])", json: #"{"trust_status": "trusted"}"#)
            #expect(trusted.status == .ok)
            #expect(try json(trusted)["trust_status"] as? String == "trusted")
            #expect(
                try await client.send(.patch, "/api/entities/\(ids[0])", json: #"{"trust_status": "maybe"}"#).status
                    == .unprocessableContent)
            #expect(
                try await client.send(.patch, "/api/entities/nobody", json: #"{"trust_status": "trusted"}"#).status
                    == .notFound)
            try await waitUntil("the audit trail has the trust change") {
                let entries =
                    try await client.getJSON("/api/audit?resource_type=entity&status=success")["logs"]
                    as? [[String: Any]] ?? []
                let changes = (entries.first?["details"] as? [String: Any])?["changes"] as? [String: [String: String]]
                return changes?["trust_status"] == ["old": "unknown", "new": "trusted"]
            }
        }
    }
}
