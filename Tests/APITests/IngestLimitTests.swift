import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// The edges of the batch and NDJSON paths.
@Suite(.scratchApp) struct IngestLimitTests {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    static func post(
        _ client: any TestClientProtocol, _ uri: String, key: String? = nil,
        contentType: String = "application/json", _ body: String
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: contentType]
        if let key { headers[Self.idempotencyKey] = key }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    /// The key's detection is stored for another camera (another stream): 409, never a 500.
    @Test func theSameKeyOnAnotherCameraIs409AndWritesNothing() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        try await IngestAPITests.register(app.client, "garage")
        let first = try await Self.post(app.client, "/api/detections", key: "k-1", IngestAPITests.detection())
        #expect(first.status == .created)
        let reused = try await Self.post(
            app.client, "/api/detections", key: "k-1", IngestAPITests.detection(camera: "garage"))
        #expect(reused.status == .conflict, "\(String(buffer: reused.body))")
        #expect(try json(reused)["detail"] as? String == "Idempotency-Key was already used for a different request")
        #expect(try await IngestAPITests.storedDetections(app.store).count == 1)
    }

    /// A key reused for a different detection of the same camera is 409 on every ingest path,
    /// and writes nothing; the same input spelled differently (key order, spaces) is a retry.
    @Test func theSameKeyForOtherInputIs409OnEveryPath() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        let detection = IngestAPITests.detection()
        let first = try await Self.post(app.client, "/api/detections", key: "same-camera", detection)
        #expect(first.status == .created)
        let firstID = try #require(try json(first)["id"] as? Int)

        let other = try await Self.post(
            app.client, "/api/detections", key: "same-camera", IngestAPITests.detection(object: "person"))
        #expect(other.status == .conflict, "\(String(buffer: other.body))")
        #expect(try json(other)["detail"] as? String == "Idempotency-Key was already used for a different request")

        // The same fields in another order, with other spaces: the first detection, 200.
        let respelled =
            #"{ "bbox_height":40,"bbox_width":30, "bbox_y":2,"bbox_x":1, "confidence":0.8, "object_type":"car","#
            + #""file_path":"/export/porch/a.jpg","camera_id":"porch" }"#
        let retry = try await Self.post(app.client, "/api/detections", key: "same-camera", respelled)
        #expect(retry.status == .ok, "\(String(buffer: retry.body))")
        #expect(try json(retry)["id"] as? Int == firstID)

        // A JSON batch with one item changed and one added: all or nothing, 409, the new one
        // not written either.
        let batch = "[\(detection), \(IngestAPITests.detection(object: "cat"))]"
        #expect(try await Self.post(app.client, "/api/detections/batch", key: "b-same", batch).status == .created)
        let changed =
            "[\(detection), \(IngestAPITests.detection(object: "dog")), \(IngestAPITests.detection(object: "fox"))]"
        let refused = try await Self.post(app.client, "/api/detections/batch", key: "b-same", changed)
        #expect(refused.status == .conflict, "\(String(buffer: refused.body))")

        // NDJSON: the changed line is reported as a conflict, the unchanged one is already stored.
        let lines = "\(detection)\n\(IngestAPITests.detection(object: "cat"))\n"
        let upload = try await Self.post(
            app.client, "/api/detections/batch", key: "nd-same", contentType: "application/x-ndjson", lines)
        #expect(try json(upload)["accepted"] as? Int == 2)
        let changedLines = "\(detection)\n\(IngestAPITests.detection(object: "bird"))\n"
        let again = try await Self.post(
            app.client, "/api/detections/batch", key: "nd-same", contentType: "application/x-ndjson", changedLines)
        let report = try json(again)
        #expect(report["accepted"] as? Int == 0, "\(report)")
        #expect(report["already_stored"] as? Int == 1, "\(report)")
        let errors = try #require(report["errors"] as? [[String: Any]])
        #expect(errors.compactMap { $0["line"] as? Int } == [2])
        let issue = (errors.first?["detail"] as? [[String: Any]])?.first
        #expect(issue?["type"] as? String == "conflict", "\(report)")

        // 1 + 2 + 2 detections stored, none of the refused ones.
        let stored = try await IngestAPITests.storedDetections(app.store)
        #expect(stored.count == 5)
    }

    @Test func aJSONBatchReplayedWithItsKeyAnswersTheFirstDetections() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        let batch = "[\(IngestAPITests.detection()), \(IngestAPITests.detection(object: "cat"))]"
        let first = try await Self.post(app.client, "/api/detections/batch", key: "b-1", batch)
        #expect(first.status == .created)
        let stored = try await IngestAPITests.storedDetections(app.store)
        #expect(stored.count == 2)

        let replay = try await Self.post(app.client, "/api/detections/batch", key: "b-1", batch)
        #expect(replay.status == .ok)
        func ids(_ response: TestResponse) throws -> [Int] {
            try #require(try json(response)["detections"] as? [[String: Any]]).compactMap { $0["id"] as? Int }
        }
        #expect(try ids(replay) == ids(first))
        #expect(try ids(first) == stored.map { Int($0.detectionID) })
        #expect(try await IngestAPITests.storedDetections(app.store) == stored)
    }

    @Test func aJSONBatchHoldsOneToTenThousandItems() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        let one = IngestAPITests.detection()
        for count in [0, 10_001] {
            let body = "[" + Array(repeating: one, count: count).joined(separator: ",") + "]"
            let refused = try await Self.post(app.client, "/api/detections/batch", body)
            #expect(refused.status == .unprocessableContent, "\(count) items")
            let detail = try #require(try json(refused)["detail"] as? [[String: Any]])
            #expect(detail.first?["loc"] as? [String] == ["body"], "\(count) items")
            #expect(detail.first?["msg"] as? String == "List should have between 1 and 10000 items")
        }
        #expect(try await IngestAPITests.storedDetections(app.store).isEmpty)
        let most = "[" + Array(repeating: one, count: 10_000).joined(separator: ",") + "]"
        let accepted = try await Self.post(app.client, "/api/detections/batch", most)
        #expect(accepted.status == .created)
        #expect(try json(accepted)["count"] as? Int == 10_000)
        #expect(try await IngestAPITests.storedDetections(app.store).count == 10_000)
    }

    @Test func ndjsonReportsTheFirstHundredErrorsAndSaysTheRestWereCut() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        func upload(bad: Int) async throws -> [String: Any] {
            let lines = [IngestAPITests.detection()] + Array(repeating: "{oops", count: bad)
            let response = try await Self.post(
                app.client, "/api/detections/batch", contentType: "application/x-ndjson",
                lines.joined(separator: "\n"))
            #expect(response.status == .ok)
            return try json(response)
        }
        let all = try await upload(bad: 100)
        #expect(all["rejected"] as? Int == 100)
        #expect((all["errors"] as? [[String: Any]])?.count == 100)
        #expect(all["errors_truncated"] as? Bool == false)

        let cut = try await upload(bad: 150)
        #expect(cut["accepted"] as? Int == 1)
        #expect(cut["rejected"] as? Int == 150)
        let errors = try #require(cut["errors"] as? [[String: Any]])
        #expect(errors.compactMap { $0["line"] as? Int } == Array(2...101))
        #expect(cut["errors_truncated"] as? Bool == true)
        #expect(try await IngestAPITests.storedDetections(app.store).count == 2)
    }

    @Test func anNDJSONBodyWithoutDetectionsIs422() async throws {
        let app = try TestApp.current
        for body in ["", "\n\n  \n"] {
            let response = try await Self.post(
                app.client, "/api/detections/batch", contentType: "application/x-ndjson", body)
            #expect(response.status == .unprocessableContent, "\(body.debugDescription)")
            let detail = try #require(try json(response)["detail"] as? [[String: Any]])
            #expect(detail.first?["msg"] as? String == "No detections in the body")
            #expect(detail.first?["type"] as? String == "missing")
        }
        #expect(try await IngestAPITests.storedDetections(app.store).isEmpty)
    }
}
