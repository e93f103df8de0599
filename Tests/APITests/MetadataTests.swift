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
import Synthetic
import Testing
import VigilTesting

/// Who and what caused each event: the metadata every event carries, and the worker key that
/// names the actor of an analysis.
@Suite struct MetadataTests {
    /// The metadata of the events of `type`, in log order.
    static func metadata(_ store: EventStore, type: String) async throws -> [(eventID: UUID, metadata: [String: Any])] {
        let rows = try await store.client.query(
            "SELECT event_id, metadata::text FROM events WHERE type = \(type) ORDER BY tx_id, position",
            logger: store.logger)
        var all: [(UUID, [String: Any])] = []
        for try await (id, text) in rows.decode((UUID, String).self) {
            all.append((id, try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])))
        }
        return all
    }

    @Test(
        "POST /analysis needs the worker key when one is set: 401 without or with a wrong one, nothing written",
        .scratchApp {
            $0.workerKey = "s3cret"
            $0.adminKey = "root"
        })
    func workerKeyOnAnalysis() async throws {
        let app = try TestApp.current
        try await app.store.appendSynthetic(
            SyntheticHistory(start: Date(timeIntervalSince1970: 1_795_000_000)), events: 0..<1)
        try await waitUntil("the event is projected") {
            try json(try await app.client.call(.get, "/api/events", key: "root"))["count"] as? Int == 1
        }
        let before = try await Self.metadata(app.store, type: SecurityEventAnalyzed.type).count
        let body = #"{"risk_score": 12, "summary": "A cat"}"#
        for key in [nil, "wrong"] {
            var headers: HTTPFields = [.contentType: "application/json"]
            if let key { headers[HTTPField.Name("X-API-Key")!] = key }
            let refused = try await app.client.execute(
                uri: "/api/events/1/analysis", method: .post, headers: headers, body: ByteBuffer(string: body))
            #expect(refused.status == .unauthorized, "key \(key ?? "none")")
            let detail = key == nil ? "Missing API key: send it in the X-API-Key header" : "Invalid API key"
            #expect(try json(refused)["detail"] as? String == detail)
        }
        #expect(try await Self.metadata(app.store, type: SecurityEventAnalyzed.type).count == before)

        let accepted = try await app.client.execute(
            uri: "/api/events/1/analysis", method: .post,
            headers: [.contentType: "application/json", HTTPField.Name("X-API-Key")!: "s3cret"],
            body: ByteBuffer(string: body))
        #expect(accepted.status == .created)
        let analyses = try await Self.metadata(app.store, type: SecurityEventAnalyzed.type)
        #expect(analyses.count == before + 1)
        #expect(analyses.last?.metadata["actor"] as? String == "worker")
    }

    @Test(
        "A request's id and user agent go into its events; without X-Request-ID one is made up",
        .scratchApp)
    func requestMetadata() async throws {
        let app = try TestApp.current
        let named = try await app.client.execute(
            uri: "/api/cameras", method: .post,
            headers: [
                .contentType: "application/json", HTTPField.Name("X-Request-ID")!: "req-42",
                .userAgent: "vigil-tests/1.0",
            ],
            body: ByteBuffer(string: #"{"name": "Porch", "folder_path": "/export/porch"}"#))
        #expect(named.status == .created)
        try await IngestAPITests.register(app.client, "garage")
        let registered = try await Self.metadata(app.store, type: CameraRegistered.type)
        #expect(registered.count == 2)
        #expect(registered.first?.metadata["request_id"] as? String == "req-42")
        #expect(registered.first?.metadata["user_agent"] as? String == "vigil-tests/1.0")
        #expect(registered.first?.metadata["actor"] as? String == "anonymous")
        let madeUp = try #require(registered.last?.metadata["request_id"] as? String)
        #expect(UUID(uuidString: madeUp) != nil, "\(madeUp)")
    }

    @Test(
        "The aggregator's events name the detection that caused them and the batch they belong to",
        .scratchApp { $0.settings.config.batchIdleTimeoutSeconds = 300 })
    func causationAndCorrelation() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        // A fast-path person opens and closes an event of its own at once.
        let posted = try await app.client.send(
            .post, "/api/detections", json: IngestAPITests.detection(object: "person", confidence: 0.95))
        #expect(posted.status == .created)
        let detectionID = try #require(try json(posted)["id"] as? Int)
        try await waitUntil("the fast-path event is closed") {
            try await Self.metadata(app.store, type: SecurityEventClosed.type).count == 1
        }
        let detection = try #require(try await Self.metadata(app.store, type: DetectionRecorded.type).first)
        let opened = try #require(try await Self.metadata(app.store, type: SecurityEventOpened.type).first)
        let closed = try #require(try await Self.metadata(app.store, type: SecurityEventClosed.type).first)
        let cause = detection.eventID.uuidString
        #expect((opened.metadata["causation_id"] as? String)?.uppercased() == cause)
        #expect((closed.metadata["causation_id"] as? String)?.uppercased() == cause)
        #expect(opened.metadata["correlation_id"] as? String == "porch-\(detectionID)")
        #expect(opened.metadata["actor"] as? String == "batch-aggregator")
    }
}
