import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Projections
import Synthetic
import Testing
import VigilTesting

@Suite("Read API: cameras, reviews, search, export")
struct CommandAPITests {
    static let start = Date(timeIntervalSince1970: 1_795_000_000)

    /// The number of events in the log besides refusal records (what a refused command must
    /// not change).
    static func logSize(_ store: EventStore) async throws -> Int { try await store.changeCount() }

    @Test("Cameras: 201 with a normalised id, 409 for a duplicate, 422 writes nothing, PATCH, soft DELETE")
    func cameras() async throws {
        try await withApp { store, client in
            let created = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Front Door", "folder_path": "/export/foscam/front"}"#)
            #expect(created.status == .created)
            let camera = try json(created)
            #expect(camera["id"] as? String == "front_door" && camera["status"] as? String == "online")
            #expect(camera["last_seen_at"] is NSNull)
            // Reads follow the projection (another test's transaction can hold the horizon).
            try await waitUntil("the camera is in the read model") {
                try await client.send(.get, "/api/cameras/front_door").status == .ok
            }

            let before = try await Self.logSize(store)
            let duplicate = try await client.send(
                .post, "/api/cameras", json: #"{"name": "front-door", "folder_path": "/elsewhere"}"#)
            #expect(duplicate.status == .conflict)
            #expect(try json(duplicate)["detail"] as? String == "Camera front_door already exists")
            let sameFolder = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Porch", "folder_path": "/export/foscam/front"}"#)
            #expect(sameFolder.status == .conflict)

            let invalid = try await client.send(
                .post, "/api/cameras", json: #"{"folder_path": 7, "status": "sleeping"}"#)
            #expect(invalid.status == .unprocessableContent)
            let issues = try #require(try json(invalid)["detail"] as? [[String: Any]])
            #expect(
                Set(issues.compactMap { ($0["loc"] as? [String])?.joined(separator: ".") })
                    == ["body.name", "body.folder_path", "body.status"])
            #expect(Set(issues.compactMap { $0["type"] as? String }) == ["missing", "string_type", "enum"])
            let notJSON = try await client.send(.post, "/api/cameras", json: "{name")
            #expect(notJSON.status == .unprocessableContent)
            let traversal = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Sneaky", "folder_path": "/export/../etc"}"#)
            #expect(traversal.status == .unprocessableContent)
            #expect(try await Self.logSize(store) == before, "refused commands wrote nothing")

            let patched = try await client.send(.patch, "/api/cameras/front_door", json: #"{"status": "offline"}"#)
            #expect(patched.status == .ok)
            #expect(try json(patched)["status"] as? String == "offline")
            try await waitUntil("the list shows the camera offline") {
                try await client.getJSON("/api/cameras?status=offline")["count"] as? Int == 1
            }
            #expect(try await client.getJSON("/api/cameras/front_door")["status"] as? String == "offline")

            // The camera's history: its events and detections leave the lists with it.
            try await store.appendSynthetic(SyntheticHistory(cameraCount: 2, start: Self.start), events: 0..<20)
            try await client.waitForEvents(20)
            let frontEvents = try await client.getJSON("/api/events?camera_id=front_door")["count"] as? Int ?? 0
            #expect(frontEvents > 0)
            let deleted = try await client.send(.delete, "/api/cameras/front_door")
            #expect(deleted.status == .noContent)
            try await waitUntil("the removal is applied") {
                let detections = try await client.getJSON("/api/detections?camera_id=front_door")["count"] as? Int
                let events = try await client.getJSON("/api/events?camera_id=front_door")["count"] as? Int
                let camera = try await client.send(.get, "/api/cameras/front_door").status
                return detections == 0 && events == 0 && camera == .notFound
            }
            #expect(try await client.send(.get, "/api/cameras/front_door").status == .notFound)
            #expect(try await client.send(.delete, "/api/cameras/front_door").status == .notFound)
            #expect(try await client.getJSON("/api/events")["count"] as? Int == 20 - frontEvents)
            #expect(try await client.getJSON("/api/events?camera_id=front_door")["count"] as? Int == 0)
            #expect(try await client.getJSON("/api/detections?camera_id=front_door")["count"] as? Int == 0)
            #expect(try await client.getJSON("/api/detections")["count"] as? Int == 20 - frontEvents)
            let cameras = try await client.getJSON("/api/cameras")
            #expect((cameras["cameras"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["back_yard"])
            // The log keeps everything: the removal is an event.
            #expect(try await store.readStream("camera-front_door")?.events.last?.type == "CameraRemoved")
        }
    }

    @Test("PATCH /api/events/{id} appends SecurityEventReviewed and answers with the reviewed event")
    func review() async throws {
        try await withApp { store, client in
            try await store.appendSynthetic(SyntheticHistory(start: Self.start), events: 0..<5)
            try await client.waitForEvents(5)
            let response = try await client.send(
                .patch, "/api/events/3", json: #"{"reviewed": true, "notes": "Delivery driver"}"#)
            #expect(response.status == .ok)
            let event = try json(response)
            #expect(event["reviewed"] as? Bool == true && event["notes"] as? String == "Delivery driver")
            try await waitUntil("the review is in the list") {
                try await client.getJSON("/api/events?reviewed=true")["count"] as? Int == 1
            }
            let notesOnly = try await client.send(.patch, "/api/events/3", json: #"{"notes": "Known"}"#)
            #expect(try json(notesOnly)["reviewed"] as? Bool == true && json(notesOnly)["notes"] as? String == "Known")
            // Notes are free text (lines allowed); `null` clears them, absent keeps them.
            let lines = try await client.send(.patch, "/api/events/3", json: #"{"notes": "Two\nlines"}"#)
            #expect(try json(lines)["notes"] as? String == "Two\nlines")
            let cleared = try await client.send(.patch, "/api/events/3", json: #"{"notes": null}"#)
            #expect(cleared.status == .ok)
            #expect(try json(cleared)["notes"] is NSNull)
            let clearing = try #require(try await store.readStream("secevent-3")?.events.last?.data)
            #expect((try JSONSerialization.jsonObject(with: Data(clearing.utf8)) as? [String: Any])?["notes"] is NSNull)
            let kept = try await client.send(.patch, "/api/events/3", json: #"{"reviewed": false}"#)
            #expect(try json(kept)["notes"] is NSNull && json(kept)["reviewed"] as? Bool == false)
            try await waitUntil("the read model shows the notes cleared") {
                let event = try await client.getJSON("/api/events/3")
                return event["notes"] is NSNull && event["reviewed"] as? Bool == false
            }
            #expect(
                try json(try await client.send(.patch, "/api/events/3", json: #"{"notes": "Back"}"#))["notes"]
                    as? String == "Back")

            let stored = try #require(try await store.readStream("secevent-3")?.events.last)
            #expect(stored.type == "SecurityEventReviewed")
            #expect(stored.metadata.contains(#""actor""#))
            let before = try await Self.logSize(store)
            let invalid = try await client.send(.patch, "/api/events/3", json: #"{"reviewed": "yes"}"#)
            #expect(invalid.status == .unprocessableContent)
            #expect(try await client.send(.patch, "/api/events/404", json: #"{"reviewed": true}"#).status == .notFound)
            #expect(try await Self.logSize(store) == before)
        }
    }

    @Test("Stats, full-text search, and a CSV export that is safe against formula injection")
    func statsSearchExport() async throws {
        try await withApp { store, client in
            try await store.appendSynthetic(SyntheticHistory(start: Self.start), events: 0..<30)
            let hostile = SecurityEventAnalyzed(
                id: 7, riskScore: 95, summary: "=HYPERLINK(\"http://evil\",\"x\"), crowbar seen",
                reasoning: "Someone with a crowbar at night")
            try await store.append(
                to: hostile.stream, events: [try NewEvent(hostile, metadata: EventMetadata(actor: "tests"))])
            try await client.waitForEvents(30)
            try await waitUntil("event 7 is re-analyzed") {
                try await client.getJSON("/api/events/7")["risk_score"] as? Int == 95
            }

            // One more event, opened and not analyzed yet: in the total, at no level.
            let opened = SecurityEventOpened(
                id: 31, cameraId: "front_door", batchId: "batch-31", startedAt: Self.start, detectionIds: [],
                objectTypes: [])
            try await store.append(
                to: opened.stream, events: [try NewEvent(opened, metadata: EventMetadata(actor: "tests"))])
            try await client.waitForEvents(31)
            // Over all history the stats come from the score histogram: what counting the rows
            // (a time range that holds them all) gives.
            let stats = try await client.getJSON("/api/events/stats")
            #expect(stats["total_events"] as? Int == 31)
            let levels = try #require(stats["events_by_risk_level"] as? [String: Int])
            #expect(levels.values.reduce(0, +) == 30 && levels["critical", default: 0] >= 1)
            let byCamera = try #require(stats["events_by_camera"] as? [[String: Any]])
            #expect(byCamera.compactMap { $0["event_count"] as? Int }.reduce(0, +) == 31)
            #expect(byCamera.first?["camera_name"] is String)
            for camera in ["", "&camera_id=front_door", "&camera_id=garage"] {
                let histogram = try await client.send(.get, "/api/events/stats?" + camera.dropFirst())
                let rows = try await client.send(.get, "/api/events/stats?start_date=2000-01-01" + camera)
                #expect(String(buffer: histogram.body) == String(buffer: rows.body), "\(camera)")
                // And each level's list counts the same (from the histogram) as its page holds.
                for level in RiskLevel.allCases.map(\.rawValue) {
                    let query = "/api/events?limit=100&risk_level=\(level)" + camera
                    let page = try await client.getJSON(query)
                    #expect(page["count"] as? Int == (page["events"] as? [Any])?.count, "\(query)")
                }
            }

            let search = try await client.getJSON("/api/events/search?q=crowbar")
            #expect(search["total_count"] as? Int == 1)
            let result = try #require((search["results"] as? [[String: Any]])?.first)
            #expect(result["id"] as? Int == 7 && result["relevance_score"] is Double && result["camera_name"] is String)

            let export = try await client.send(.get, "/api/events/export")
            #expect(export.status == .ok)
            #expect(export.headers[.contentType]?.hasPrefix("text/csv") == true)
            let lines = String(buffer: export.body).split(separator: "\r\n")
            #expect(
                lines.first
                    == "event_id,camera_name,started_at,ended_at,risk_score,risk_level,summary,detection_count,reviewed"
            )
            #expect(lines.count == 32)
            let row = try #require(lines.first { $0.hasPrefix("7,") })
            #expect(row.contains(#""'=HYPERLINK(""http://evil"",""x""), crowbar seen""#), "\(row)")
            #expect(row.hasSuffix(",95,critical,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\"), crowbar seen\",1,No"))
        }
    }
}
