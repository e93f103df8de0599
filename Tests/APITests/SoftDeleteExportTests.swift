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

/// A removed camera's history leaves every read (stats, search, export), its open batch closes;
/// the CSV export guards every formula start and streams page after page.
@Suite struct SoftDeleteExportTests {
    static func export(_ client: any TestClientProtocol, _ query: String = "") async throws -> String {
        let response = try await client.send(.get, "/api/events/export\(query)")
        #expect(response.status == .ok)
        return String(buffer: response.body)
    }

    @Test("A removed camera's events leave stats, search and export", .scratchApp)
    func removedCameraLeavesEveryRead() async throws {
        let app = try await ReadFiltersTests.seeded()
        #expect(try await app.client.getJSON("/api/events/stats")["total_events"] as? Int == 3)
        #expect(try await app.client.send(.delete, "/api/cameras/back_yard").status == .noContent)
        try await waitUntil("the removal is applied") {
            try await app.client.getJSON("/api/events?camera_id=back_yard")["count"] as? Int == 0
        }
        let stats = try await app.client.getJSON("/api/events/stats")
        #expect(stats["total_events"] as? Int == 1)
        let byCamera = try #require(stats["events_by_camera"] as? [[String: Any]])
        #expect(byCamera.compactMap { $0["camera_name"] as? String } == ["Front Door"])
        let search = try await app.client.getJSON("/api/events/search?q=person")
        #expect(search["total_count"] as? Int == 1)
        #expect((search["results"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } == [1])
        #expect(try await app.client.getJSON("/api/events/search?q=dog")["total_count"] as? Int == 0)
        let rows = try await Self.export(app.client).split(separator: "\r\n")
        #expect(rows.count == 2)
        #expect(rows.last?.hasPrefix("1,Front Door,") == true)
        #expect(try await app.client.send(.get, "/api/events/2").status == .notFound)
        #expect(try await app.client.send(.get, "/api/events/2/detections").status == .notFound)
    }

    @Test(
        "Removing a camera closes its open batch at once, with what it held",
        // Neither the window nor the idle time can close it within the test: only the removal.
        .scratchApp {
            $0.settings.config.batchWindowSeconds = 3600
            $0.settings.config.batchIdleTimeoutSeconds = 3600
        })
    func removalClosesTheOpenBatch() async throws {
        let app = try TestApp.current
        try await IngestAPITests.register(app.client, "porch")
        let batch = "[\(IngestAPITests.detection(object: "car")), \(IngestAPITests.detection(object: "dog"))]"
        let posted = try await app.client.send(.post, "/api/detections/batch", json: batch)
        #expect(posted.status == .created)
        let ids = try #require(try json(posted)["detections"] as? [[String: Any]]).compactMap { $0["id"] as? Int }
        try await waitUntil("the batch is open") { try await PipelineTests.openBatches(app.store) == 1 }
        #expect(try await PipelineTests.closes(app.store).isEmpty)

        #expect(try await app.client.send(.delete, "/api/cameras/porch").status == .noContent)
        try await waitUntil("the batch is closed") { try await PipelineTests.closes(app.store).count == 1 }
        #expect(try await PipelineTests.closes(app.store).first?.detections.map { Int($0) } == ids)
        #expect(try await PipelineTests.openBatches(app.store) == 0)
    }

    @Test(
        "What lands in the log while a camera stands removed stays hidden everywhere; registered again, it starts fresh",
        .scratchApp)
    func recordsWhileRemovedStayHidden() async throws {
        let app = try TestApp.current
        let (client, store) = (app.client, app.store)
        let person = IngestAPITests.detection(
            camera: "porch", object: "person", confidence: 0.95, at: "2026-11-20T10:00:00Z")
        try await IngestAPITests.register(client, "porch")
        #expect(try await client.send(.post, "/api/detections", json: person).status == .created)
        try await waitUntil("its event is opened") {
            try await IngestAPITests.count(store, type: SecurityEventOpened.type) == 1
        }
        #expect(try await client.send(.delete, "/api/cameras/porch").status == .noContent)
        // What a POST that checked the camera just before the removal committed appends after it.
        let late =
            #"{"id": 900001, "camera_id": "porch", "file_path": "/export/porch/late.jpg", "detected_at": "2026-11-20T10:05:00Z", "object_type": "person", "confidence": 0.95}"#
        try await store.append(
            to: DetectionRecorded.stream(cameraId: "porch"),
            events: [NewEvent(type: DetectionRecorded.type, data: late)])
        // The batch aggregator opens its event after the removal too, as it did for detections
        // from before a removal it had not got to yet.
        let openings = LogFilter(types: [SecurityEventOpened.type])
        try await waitUntil("the late detection's event is opened, and readable") {
            try await store.read(after: .start, filter: openings, limit: 10).events.count == 2
        }
        let opened = try await store.read(after: .start, filter: openings, limit: 10)
        let last = try #require(opened.events.last?.checkpoint)
        try await waitUntil("the read models have applied it") {
            let statuses = try await store.projectionStatuses()
            return ["detections", "security_events", "analytics"].allSatisfy { name in
                statuses.first { $0.name == name }.map { $0.checkpoint >= last } ?? false
            }
        }
        let range = "start_date=2026-11-19&end_date=2026-11-21"
        #expect(try await client.getJSON("/api/detections?camera_id=porch")["count"] as? Int == 0)
        #expect(try await client.getJSON("/api/detections")["count"] as? Int == 0)
        #expect(try await client.send(.get, "/api/detections/900001").status == .notFound)
        #expect(try await client.getJSON("/api/events")["count"] as? Int == 0)
        #expect(try await client.getJSON("/api/events/stats")["total_events"] as? Int == 0)
        #expect(
            try await client.getJSON("/api/analytics/object-distribution?\(range)")["total_detections"] as? Int == 0)
        for id in opened.events.compactMap({ try? SecurityEventOpened.decode($0.data).id }) {
            #expect(try await client.send(.get, "/api/events/\(id)").status == .notFound, "event \(id)")
            #expect(
                try await client.send(.get, "/api/events/\(id)?as_of=\(last.token)").status == .notFound, "event \(id)")
        }

        // Registered again: a fresh camera, whose new detections show and the old ones don't.
        try await IngestAPITests.register(client, "porch")
        #expect(try await client.send(.post, "/api/detections", json: person).status == .created)
        try await waitUntil("the new detection and its event show") {
            let detections = try await client.getJSON("/api/detections?camera_id=porch")["count"] as? Int
            let events = try await client.getJSON("/api/events?camera_id=porch")["count"] as? Int
            return detections == 1 && events == 1
        }
        try await waitUntil("analytics counts the new one only") {
            try await client.getJSON("/api/analytics/object-distribution?\(range)")["total_detections"] as? Int == 1
        }
    }

    @Test("Every cell that starts like a formula gets a quote, camera names too; line breaks are quoted", .scratchApp)
    func formulaGuard() async throws {
        let app = try TestApp.current
        var history = ImportedHistory()
        let start = Date(timeIntervalSince1970: 1_795_000_000)
        try history.add(
            CameraRegistered(
                id: "evil", name: "=cmd|' /C calc'!A0", folderPath: "/export/evil", status: .online, registeredAt: start
            ))
        let summaries = ["+1+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "plain", "two\r\nlines", "one\nline"]
        for (index, summary) in summaries.enumerated() {
            let id = Int64(index + 1)
            try history.add(
                SecurityEventOpened(
                    id: id, cameraId: "evil", batchId: "b\(id)", startedAt: start.addingTimeInterval(Double(index)),
                    detectionIds: [id], objectTypes: ["car"]))
            try history.add(SecurityEventAnalyzed(id: id, riskScore: 5, summary: summary, reasoning: "r"))
        }
        try await history.append(to: app.store)
        try await app.client.waitForEvents(summaries.count)
        try await waitUntil("the camera is in the read model") {
            try await app.client.send(.get, "/api/cameras/evil").status == .ok
        }
        try await waitUntil("every analysis is applied") {
            try await app.client.getJSON("/api/events/search?q=plain")["total_count"] as? Int == 1
        }
        let csv = try await Self.export(app.client)
        let expected = [
            "'+1+1", "'-2", "'@SUM(A1)", "'\tTab", "\"'\rCR\"", "plain", "\"two\r\nlines\"", "\"one\nline\"",
        ]
        for (index, cell) in expected.enumerated() {
            #expect(
                csv.contains("\r\n\(index + 1),'=cmd|' /C calc'!A0,"), "the camera name of event \(index + 1)")
            #expect(csv.contains(",\(cell),1,No\r\n"), "\(cell.debugDescription) in \(csv.debugDescription)")
        }
    }

    @Test("An export longer than one page has every event once, newest first", .scratchApp)
    func multiPageExport() async throws {
        let app = try TestApp.current
        let history = SyntheticHistory(cameraCount: 2, start: Date(timeIntervalSince1970: 1_795_000_000), spacing: 1)
        try await app.store.appendSynthetic(history, events: 0..<2_100)
        try await app.client.waitForEvents(2_100)
        let rows = try await Self.export(app.client).split(separator: "\r\n").dropFirst()
        let ids = rows.compactMap { Int($0.prefix { $0 != "," }) }
        #expect(ids.count == 2_100)
        #expect(Set(ids).count == 2_100)
        let times = rows.map { $0.split(separator: ",", omittingEmptySubsequences: false)[2] }
        #expect(times == times.sorted(by: >))
    }
}
