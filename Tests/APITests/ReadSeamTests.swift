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

/// The read side's seam: one severity rule for Swift and SQL, and one rendering per item.
@Suite struct ReadSeamTests {
    @Test("The SQL level and per-level conditions give every score the level Swift gives it")
    func severitySQLAgreesWithSwift() async throws {
        try await withScratchDatabase { store, _ in
            let cases = [
                SeverityThresholds.defaults, SeverityThresholds(lowMax: 0, mediumMax: 1, highMax: 100),
                SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70),
            ]
            for thresholds in cases {
                let conditions = RiskLevel.allCases.map {
                    "CASE WHEN \(thresholds.conditionSQL(score: "s", level: $0)) THEN '\($0.rawValue)' END"
                }
                let statement = """
                    SELECT s, \(thresholds.levelSQL(score: "s")), concat_ws(',', \(conditions.joined(separator: ", ")))
                    FROM generate_series(-1, 101) s
                    """
                let rows = try await store.client.query(SQLBuilder().query(statement), logger: store.logger)
                var seen = 0
                for try await (score, level, matching) in rows.decode((Int, String, String).self) {
                    seen += 1
                    #expect(level == thresholds.level(score).rawValue, "score \(score) under \(thresholds)")
                    #expect(matching == level, "score \(score) under \(thresholds): conditions \(matching)")
                    if let scores = thresholds.scores(of: thresholds.level(score)), (0...100).contains(score) {
                        #expect(scores.contains(score))
                    }
                }
                #expect(seen == 103)
                let null = try await store.client.query(
                    SQLBuilder().query("SELECT \(thresholds.levelSQL(score: "NULL::int"))"), logger: store.logger)
                for try await level in null.decode(String?.self) { #expect(level == nil) }
            }
        }
    }

    @Test("After PUT /api/system/severity an event's summary still agrees with its risk_level")
    func summaryAgreesWithLevelAfterAThresholdChange() async throws {
        try await withApp(configure: PipelineTests.configure(prefix: PipelineTests.prefix())) { _, client in
            try await IngestAPITests.register(client, "porch")
            // A car at noon: score 20, low under the defaults.
            let posted = try await client.send(
                .post, "/api/detections", json: IngestAPITests.detection(object: "car", at: "2026-11-20T12:00:00Z"))
            #expect(posted.status == .created)
            var event: [String: Any] = [:]
            try await waitUntil("the event is analyzed") {
                event = try await PipelineTests.events(client).first ?? [:]
                return event["risk_score"] is Int
            }
            let id = try #require(event["id"] as? Int)
            #expect(event["risk_level"] as? String == "low")
            let before = try #require(event["summary"] as? String)

            let changed = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 10, "medium_max": 15, "high_max": 19}"#)
            #expect(changed.status == .ok)
            let after = try await client.getJSON("/api/events/\(id)")
            #expect(after["risk_level"] as? String == "critical")
            let summary = try #require(after["summary"] as? String)
            #expect(summary == before)
            for level in RiskLevel.allCases where level != .critical {
                #expect(!summary.lowercased().contains(level.rawValue), "\(summary)")
            }

            // Analyzed again under the new thresholds: the same score says the same thing, so
            // the summary stored before the change is not stale.
            #expect(try await client.send(.post, "/api/events/\(id)/reanalyse").status == .accepted)
            try await waitUntil("event \(id) is analyzed again") {
                try await client.getJSON("/api/events/\(id)/analyses")["count"] as? Int == 2
            }
            let again = try await client.getJSON("/api/events/\(id)")
            #expect(again["risk_level"] as? String == "critical")
            #expect(again["summary"] as? String == summary)
        }
    }

    @Test("Ingest answers render a detection byte for byte as GET /api/detections/{id} does")
    func ingestAndGetRenderADetectionAlike() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "porch")
            let extra = #", "enrichment_data": {"plate": "AB-123", "n": 2}, "thumbnail_path": "/t/a.jpg""#
            let one = try await client.send(
                .post, "/api/detections",
                json: IngestAPITests.detection(confidence: 0.875, at: "2026-11-20T10:00:00.250Z", extra: extra))
            #expect(one.status == .created)
            let oneID = try #require(try json(one)["id"] as? Int)
            let batch = try await client.send(
                .post, "/api/detections/batch",
                json: "[\(IngestAPITests.detection(object: "dog", extra: extra)), \(IngestAPITests.detection())]")
            #expect(batch.status == .created)
            let items = try #require(try json(batch)["detections"] as? [[String: Any]])
            #expect(items.map { $0["object_type"] as? String } == ["dog", "car"])
            for id in [oneID] + items.compactMap({ $0["id"] as? Int }) {
                try await waitUntil("detection \(id) is projected") {
                    try await client.send(.get, "/api/detections/\(id)").status == .ok
                }
            }
            let got = try await client.send(.get, "/api/detections/\(oneID)")
            #expect(String(buffer: one.body) == String(buffer: got.body))
            let batchBody = String(buffer: batch.body)
            for item in items {
                let id = try #require(item["id"] as? Int)
                let rendered = String(buffer: try await client.send(.get, "/api/detections/\(id)").body)
                #expect(batchBody.contains(rendered), "\(rendered) in \(batchBody)")
            }
        }
    }
}
