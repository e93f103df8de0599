import API
import AsyncHTTPClient
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// Detection ingest through the real router: one, a JSON batch (all or nothing), NDJSON
/// (per-line report), validation, idempotent retries.
@Suite struct IngestAPITests {
    /// Registers camera `id`; its 201 means the cameras read model shows it (read your writes:
    /// a write the read models didn't apply in time is a 202).
    static func register(_ client: any TestClientProtocol, _ id: String) async throws {
        let response = try await client.send(
            .post, "/api/cameras", json: #"{"name": "\#(id)", "folder_path": "/export/\#(id)"}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
    }

    static func detection(
        camera: String = "porch", object: String = "car", confidence: Double = 0.8, at: String? = nil,
        extra: String = ""
    ) -> String {
        let time = at.map { #", "detected_at": "\#($0)""# } ?? ""
        return
            #"{"camera_id": "\#(camera)", "file_path": "/export/\#(camera)/a.jpg", "object_type": "\#(object)", "confidence": \#(confidence), "bbox_x": 1, "bbox_y": 2, "bbox_width": 30, "bbox_height": 40\#(time)\#(extra)}"#
    }

    static func count(_ store: EventStore, type: String) async throws -> Int {
        let rows = try await store.client.query(
            "SELECT count(*) FROM events WHERE type = \(type)", logger: store.logger)
        for try await n in rows.decode(Int64.self) { return Int(n) }
        return 0
    }

    struct StoredDetection: Equatable {
        var eventID: UUID
        var detectionID: Int64
        var actor: String
    }

    /// The `DetectionRecorded` events in the log, in log order.
    static func storedDetections(_ store: EventStore) async throws -> [StoredDetection] {
        let rows = try await store.client.query(
            """
            SELECT event_id, (data->>'id')::int8, metadata->>'actor' FROM events
            WHERE type = 'DetectionRecorded' ORDER BY tx_id, position
            """, logger: store.logger)
        var stored: [StoredDetection] = []
        for try await (id, detection, actor) in rows.decode((UUID, Int64, String).self) {
            stored.append(StoredDetection(eventID: id, detectionID: detection, actor: actor))
        }
        return stored
    }

    @Test func oneDetectionIsRecordedAndListed() async throws {
        try await withApp { store, client in
            try await Self.register(client, "porch")
            let response = try await client.send(
                .post, "/api/detections", json: Self.detection(object: "dog", at: "2026-11-20T10:00:00.250Z"))
            #expect(response.status == .created)
            let created = try json(response)
            let id = try #require(created["id"] as? Int)
            #expect(created["camera_id"] as? String == "porch")
            #expect(created["detected_at"] as? String == "2026-11-20T10:00:00.250000Z")
            // The list shows it with the same fields once the projection has applied it.
            try await waitUntil("detection \(id) is listed") {
                try await client.send(.get, "/api/detections/\(id)").status == .ok
            }
            let listed = try await client.getJSON("/api/detections/\(id)")
            for key in ["id", "camera_id", "object_type", "detected_at", "bbox_width", "file_path", "media_type"] {
                #expect("\(listed[key] ?? "nil")" == "\(created[key] ?? "nil")", "\(key)")
            }
            #expect(try await Self.count(store, type: DetectionRecorded.type) == 1)
        }
    }

    @Test func badDetectionsAre422AndWriteNothing() async throws {
        try await withApp { store, client in
            try await Self.register(client, "porch")
            let cases: [(String, [String], String)] = [
                (Self.detection(camera: "attic"), ["body", "camera_id"], "value_error"),
                (Self.detection(confidence: 1.5), ["body", "confidence"], "less_than_equal"),
                (Self.detection(confidence: -0.1), ["body", "confidence"], "greater_than_equal"),
                (
                    Self.detection().replacingOccurrences(of: #""bbox_width": 30"#, with: #""bbox_width": 0"#),
                    ["body", "bbox_width"], "greater_than_equal"
                ),
                (
                    Self.detection().replacingOccurrences(of: #""bbox_x": 1"#, with: #""bbox_x": 1.5"#),
                    ["body", "bbox_x"], "int_type"
                ),
                (#"{"camera_id": "porch"}"#, ["body", "file_path"], "missing"),
                (Self.detection(at: "yesterday"), ["body", "detected_at"], "datetime_parsing"),
                (Self.detection(extra: #", "media_type": "gif""#), ["body", "media_type"], "enum"),
            ]
            for (body, location, type) in cases {
                let response = try await client.send(.post, "/api/detections", json: body)
                #expect(response.status == .unprocessableContent, "\(body)")
                let detail = try #require(try json(response)["detail"] as? [[String: Any]])
                let match = detail.first { ($0["loc"] as? [Any])?.map { "\($0)" } == location }
                #expect(match?["type"] as? String == type, "\(body): \(detail)")
            }
            #expect(try await Self.count(store, type: DetectionRecorded.type) == 0)
        }
    }

    @Test func idempotencyKeyMakesRetriesSafe() async throws {
        try await withApp { store, client in
            try await Self.register(client, "porch")
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "retry-1", .contentType: "application/json"]
            let first = try await client.execute(
                uri: "/api/detections", method: .post, headers: headers, body: ByteBuffer(string: Self.detection()))
            let second = try await client.execute(
                uri: "/api/detections", method: .post, headers: headers, body: ByteBuffer(string: Self.detection()))
            #expect(first.status == .created)
            #expect(second.status == .ok)
            #expect(try json(first)["id"] as? Int == json(second)["id"] as? Int)
            #expect(try await Self.count(store, type: DetectionRecorded.type) == 1)
        }
    }

    @Test func jsonBatchIsAllOrNothing() async throws {
        try await withApp { store, client in
            try await Self.register(client, "porch")
            let bad = "[\(Self.detection()), \(Self.detection(confidence: 7)), \(Self.detection(camera: "attic"))]"
            let refused = try await client.send(.post, "/api/detections/batch", json: bad)
            #expect(refused.status == .unprocessableContent)
            let detail = try #require(try json(refused)["detail"] as? [[String: Any]])
            let locations = detail.map { ($0["loc"] as? [Any] ?? []).map { "\($0)" } }
            #expect(locations.contains(["body", "1", "confidence"]))
            #expect(locations.contains(["body", "2", "camera_id"]))
            #expect(try await Self.count(store, type: DetectionRecorded.type) == 0)

            let good = "[\(Self.detection()), \(Self.detection(object: "person")), \(Self.detection(object: "cat"))]"
            let accepted = try await client.send(.post, "/api/detections/batch", json: good)
            #expect(accepted.status == .created)
            let items = try #require(try json(accepted)["detections"] as? [[String: Any]])
            #expect(items.map { $0["object_type"] as? String } == ["car", "person", "cat"])
            #expect(Set(items.compactMap { $0["id"] as? Int }).count == 3)
            #expect(try await Self.count(store, type: DetectionRecorded.type) == 3)
        }
    }

    @Test func ndjsonKeepsGoodLinesAndReportsBadOnes() async throws {
        try await withApp { store, client in
            try await Self.register(client, "porch")
            var lines: [String] = []
            for index in 0..<20 { lines.append(Self.detection(object: index % 2 == 0 ? "car" : "person")) }
            lines[3] = "{not json"
            lines[7] = Self.detection(confidence: 2)
            lines[12] = Self.detection(camera: "attic")
            lines[15] = "[1, 2]"
            let body = lines.joined(separator: "\n") + "\n\n"
            let headers: HTTPFields = [
                .contentType: "application/x-ndjson", HTTPField.Name("Idempotency-Key")!: "nd-1",
            ]
            let response = try await client.execute(
                uri: "/api/detections/batch", method: .post, headers: headers, body: ByteBuffer(string: body))
            #expect(response.status == .ok)
            let report = try json(response)
            #expect(report["accepted"] as? Int == 16)
            #expect(report["rejected"] as? Int == 4)
            let errors = try #require(report["errors"] as? [[String: Any]])
            #expect(errors.compactMap { $0["line"] as? Int } == [4, 8, 13, 16])
            let confidence = try #require((errors[1]["detail"] as? [[String: Any]])?.first)
            #expect((confidence["loc"] as? [Any])?.map { "\($0)" } == ["line", "8", "confidence"])
            let stored = try await Self.storedDetections(store)
            #expect(stored.count == 16)
            // Each line's event id comes from the key and its line number, so a retry of any
            // part of the upload finds exactly the lines it already stored.
            let good = (1...20).filter { ![4, 8, 13, 16].contains($0) }
            let actor = try #require(stored.first?.actor)
            #expect(
                stored.map(\.eventID)
                    == good.map { DeterministicID.uuid("DetectionRecorded", actor, "nd-1", String($0)) })

            // The same upload again with the same key: nothing new, the same events.
            let retry = try await client.execute(
                uri: "/api/detections/batch", method: .post, headers: headers, body: ByteBuffer(string: body))
            #expect(try json(retry)["already_stored"] as? Int == 16)
            #expect(try json(retry)["accepted"] as? Int == 0)
            #expect(try await Self.storedDetections(store) == stored)
        }
    }

    @Test("With VIGIL_WORKER_KEY set, ingest needs it (401 without); the worker key ingests and reads nothing")
    func workerKeyIsRequiredWhenConfigured() async throws {
        try await withApp(configure: {
            $0.workerKey = "s3cret"; $0.adminKey = "root"
        }) { store, client in
            let camera = try await client.call(
                .post, "/api/cameras", key: "root", json: #"{"name": "porch", "folder_path": "/export/porch"}"#)
            #expect(camera.status == .created)
            let refused = try await client.send(.post, "/api/detections", json: Self.detection())
            #expect(refused.status == .unauthorized)
            #expect(try json(refused)["detail"] as? String == "Missing API key: send it in the X-API-Key header")
            let wrong = try await client.call(.post, "/api/detections", key: "nope", json: Self.detection())
            #expect(wrong.status == .unauthorized)
            #expect(try json(wrong)["detail"] as? String == "Invalid API key")
            let accepted = try await client.call(.post, "/api/detections", key: "s3cret", json: Self.detection())
            #expect(accepted.status == .created)
            #expect(try await client.call(.get, "/api/detections", key: "s3cret").status == .forbidden)
            #expect(try await Self.storedDetections(store).count == 1)
        }
    }

    @Test("each instance knows the cameras without a query per detection, and forgets a removed one")
    func knownCamerasFollowTheLogOnEveryInstance() async throws {
        try await withScratchDatabase { _, scratch in
            let configuration = testConfiguration(scratch, live: true)
            try await testApplication(configuration, .live) { first in
                try await testApplication(configuration, .live) { second in
                    let (one, two) = (try #require(first.port), try #require(second.port))
                    func send(
                        _ method: NIOHTTP1.HTTPMethod, _ port: Int, _ path: String, _ body: String = ""
                    ) async throws
                        -> UInt
                    {
                        try await BodyLimitTests.send(
                            method, port: port, path, contentType: "application/json",
                            body: .bytes(.init(string: body))
                        ).0
                    }
                    let camera = #"{"name": "Porch", "folder_path": "/cams/porch"}"#
                    #expect(try await send(.POST, one, "/api/cameras", camera) == 201)
                    // Registered through the first instance a moment ago: the second finds it.
                    #expect(try await send(.POST, two, "/api/detections", Self.detection(camera: "porch")) == 201)
                    #expect(try await send(.POST, two, "/api/detections", Self.detection(camera: "porch")) == 201)
                    #expect(try await send(.POST, two, "/api/detections", Self.detection(camera: "nowhere")) == 422)

                    // Removed through the first: the second, which knew it, refuses it from then on.
                    let removed = try await send(.DELETE, one, "/api/cameras/porch")
                    #expect((200..<300).contains(removed), "\(removed)")
                    try await waitUntil("the second instance refuses detections of the removed camera") {
                        try await send(.POST, two, "/api/detections", Self.detection(camera: "porch")) == 422
                    }
                    for _ in 0..<3 {
                        #expect(try await send(.POST, two, "/api/detections", Self.detection(camera: "porch")) == 422)
                    }
                    // And registered again: known again at once.
                    #expect(try await send(.POST, one, "/api/cameras", camera) == 201)
                    #expect(try await send(.POST, two, "/api/detections", Self.detection(camera: "porch")) == 201)
                }
            }
        }
    }
}
