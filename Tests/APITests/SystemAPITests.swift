import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// `/api/system/severity` (+ preview) and `/api/system/config`, through the real router.
@Suite struct SystemAPITests {
    static let start = Date(timeIntervalSince1970: 1_780_000_000)  // 2026-05-28

    /// The synthetic history's events: id, camera and score.
    static func scored(_ history: SyntheticHistory, _ count: Int) -> [(id: Int, camera: String, score: Int)] {
        (0..<count).map { n in
            let events = history.securityEvent(n, id: Int64(n + 1), firstDetectionID: Int64(n + 1))
            let analyzed = events.compactMap { $0 as? SecurityEventAnalyzed }[0]
            let opened = events.compactMap { $0 as? SecurityEventOpened }[0]
            return (n + 1, opened.cameraId, analyzed.riskScore)
        }
    }

    static func levels(_ scores: [Int], _ thresholds: SeverityThresholds) -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: RiskLevel.allCases.map { ($0.rawValue, 0) })
        for score in scores { counts[thresholds.level(score).rawValue, default: 0] += 1 }
        return counts
    }

    @Test(
        "A threshold change re-classifies history at once in the list filter, stats and risk-history, as the preview said"
    )
    func thresholdChange() async throws {
        try await withApp { store, client in
            // 3 hours apart: 150 events over about 19 days.
            let history = SyntheticHistory(start: Self.start, spacing: 3 * 3600)
            try await store.appendSynthetic(history, events: 0..<150)
            let events = Self.scored(history, 150)
            let range = "start_date=2026-05-27&end_date=2026-06-20"
            try await client.waitForEvents(150)
            try await waitUntil("analytics has every event") {
                let body = try await client.getJSON("/api/analytics/risk-score-distribution?\(range)")
                return body["total_events"] as? Int == 150
            }

            // Defaults.
            let severity = try await client.getJSON("/api/system/severity")
            #expect(severity["thresholds"] as? [String: Int] == ["low_max": 29, "medium_max": 59, "high_max": 84])
            let definitions = try #require(severity["definitions"] as? [[String: Any]])
            #expect(definitions.map { $0["severity"] as? String } == ["low", "medium", "high", "critical"])
            #expect(definitions.map { $0["min_score"] as? Int } == [0, 30, 60, 85])
            #expect(definitions.map { $0["max_score"] as? Int } == [29, 59, 84, 100])
            #expect(definitions.map { $0["color"] as? String } == ["#22c55e", "#eab308", "#f97316", "#ef4444"])
            #expect(definitions.map { $0["priority"] as? Int } == [3, 2, 1, 0])

            // The preview, checked against the scores themselves.
            let proposed = SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70)
            let scores = events.map(\.score)
            let before = Self.levels(scores, .defaults)
            let after = Self.levels(scores, proposed)
            let changed = scores.filter { SeverityThresholds.defaults.level($0) != proposed.level($0) }.count
            #expect(changed > 0)
            let preview = try await client.getJSON("/api/system/severity/preview?low_max=20&medium_max=45&high_max=70")
            #expect(preview["total_events"] as? Int == 150)
            #expect(preview["changed_events"] as? Int == changed)
            let previewLevels = try #require(preview["levels"] as? [String: [String: Int]])
            for level in RiskLevel.allCases.map(\.rawValue) {
                #expect(previewLevels[level]?["current"] == before[level], "\(level)")
                #expect(previewLevels[level]?["proposed"] == after[level], "\(level)")
                #expect(previewLevels[level]?["difference"] == (after[level] ?? 0) - (before[level] ?? 0))
            }
            let transitions = try #require(preview["transitions"] as? [[String: Any]])
            #expect(transitions.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == changed)
            let cameras = try #require(preview["cameras"] as? [[String: Any]])
            for camera in cameras {
                let id = try #require(camera["camera_id"] as? String)
                let own = events.filter { $0.camera == id }.map(\.score)
                #expect(camera["total_events"] as? Int == own.count)
                #expect(
                    camera["changed_events"] as? Int
                        == own.filter { SeverityThresholds.defaults.level($0) != proposed.level($0) }.count)
            }
            #expect(cameras.reduce(0) { $0 + ($1["total_events"] as? Int ?? 0) } == 150)
            // Omitted thresholds keep their value in force: nothing changes.
            #expect(try await client.getJSON("/api/system/severity/preview")["changed_events"] as? Int == 0)

            // The change. Read right after the PUT returns: no waiting.
            let put = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#)
            #expect(put.status == .ok)
            #expect(try json(put)["thresholds"] as? [String: Int] == ["low_max": 20, "medium_max": 45, "high_max": 70])
            let stats = try await client.getJSON("/api/events/stats")
            #expect(stats["events_by_risk_level"] as? [String: Int] == after)
            for level in RiskLevel.allCases.map(\.rawValue) {
                #expect(
                    try await client.getJSON("/api/events?limit=1&risk_level=\(level)")["count"] as? Int == after[level]
                )
            }
            let riskHistory = try await client.getJSON("/api/analytics/risk-history?\(range)")
            let points = try #require(riskHistory["data_points"] as? [[String: Any]])
            for level in RiskLevel.allCases.map(\.rawValue) {
                #expect(points.reduce(0) { $0 + ($1[level] as? Int ?? 0) } == after[level], "\(level)")
            }
            // Each event shows its level under the new thresholds.
            let listed = try #require(try await client.getJSON("/api/events?limit=150")["events"] as? [[String: Any]])
            #expect(listed.count == 150)
            for item in listed {
                let score = try #require(item["risk_score"] as? Int)
                #expect(item["risk_level"] as? String == proposed.level(score).rawValue)
            }
            let one = try await client.getJSON("/api/events/\(events[0].id)")
            #expect(one["risk_level"] as? String == proposed.level(events[0].score).rawValue)
            // And the preview now starts from the new thresholds.
            let again = try await client.getJSON("/api/system/severity/preview")
            #expect(again["current"] as? [String: Int] == ["low_max": 20, "medium_max": 45, "high_max": 70])
            #expect(again["changed_events"] as? Int == 0)

            // The change is a fact with the previous values.
            let stream = try #require(try await store.readStream(SystemSettings.stream))
            #expect(stream.events.map(\.type) == ["SeverityThresholdsChanged"])
            let recorded = try SeverityThresholdsChanged.decode(stream.events[0].data)
            #expect(recorded.thresholds == proposed)
            #expect(recorded.previous == .defaults)
            let severityNow = try await client.getJSON("/api/system/severity")
            let definitionsNow = try #require(severityNow["definitions"] as? [[String: Any]])
            #expect(definitionsNow.map { $0["min_score"] as? Int } == [0, 21, 46, 71])
            #expect(definitionsNow.map { $0["max_score"] as? Int } == [20, 45, 70, 100])
        }
    }

    @Test("Bad thresholds: disorder is a 400 with the seed's sentence, bad fields a 422; nothing is written")
    func badThresholds() async throws {
        try await withApp { store, client in
            let order = "Thresholds must be strictly ordered: low_max < medium_max < high_max"
            for body in [
                #"{"low_max": 50, "medium_max": 40, "high_max": 70}"#,
                #"{"low_max": 20, "medium_max": 20, "high_max": 70}"#,
                #"{"low_max": 20, "medium_max": 45, "high_max": 45}"#,
            ] {
                let response = try await client.send(.put, "/api/system/severity", json: body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(try json(response)["detail"] as? String == order)
            }
            let missing = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 20, "medium_max": 45}"#)
            #expect(missing.status == .unprocessableContent)
            let issues = try #require(try json(missing)["detail"] as? [[String: Any]])
            #expect(issues.map { $0["loc"] as? [String] } == [["body", "high_max"]])
            #expect(issues.first?["type"] as? String == "missing")
            for body in [
                #"{"low_max": -1, "medium_max": 45, "high_max": 70}"#,
                #"{"low_max": 20, "medium_max": 45, "high_max": 101}"#,
                #"{"low_max": 20.5, "medium_max": 45, "high_max": 70}"#,
                #"{"low_max": "20", "medium_max": 45, "high_max": 70}"#,
                #"[20, 45, 70]"#,
            ] {
                let response = try await client.send(.put, "/api/system/severity", json: body)
                #expect(response.status == .unprocessableContent, "\(body)")
            }
            let preview = try await client.send(.get, "/api/system/severity/preview?low_max=60")
            #expect(preview.status == .badRequest)
            #expect(try json(preview)["detail"] as? String == order)
            let badPreview = try await client.send(.get, "/api/system/severity/preview?high_max=abc")
            #expect(badPreview.status == .unprocessableContent)
            // The same thresholds again: 200, no event.
            let same = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 29, "medium_max": 59, "high_max": 84}"#)
            #expect(same.status == .ok)
            #expect(try await store.readStream(SystemSettings.stream) == nil)
            // high_max 100: critical holds no score.
            let top = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 0, "medium_max": 1, "high_max": 100}"#)
            #expect(top.status == .ok)
            let critical = try #require((try json(top)["definitions"] as? [[String: Any]])?.last)
            #expect(critical["min_score"] is NSNull)
            #expect(critical["max_score"] is NSNull)
            #expect(try await store.readStream(SystemSettings.stream)?.version == 1)
        }
    }

    @Test("With VIGIL_ADMIN_KEY set, auth is on: changes and reads need a key (401 without); the actor is admin")
    func adminKey() async throws {
        try await withApp(configure: { $0.adminKey = "s3cret" }) { store, client in
            let body = ByteBuffer(string: #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#)
            let refused = try await client.execute(uri: "/api/system/severity", method: .put, headers: [:], body: body)
            #expect(refused.status == .unauthorized)
            #expect(try json(refused)["detail"] as? String == "Missing API key: send it in the X-API-Key header")
            let wrong = try await client.execute(
                uri: "/api/system/config", method: .patch, headers: [HTTPField.Name("X-API-Key")!: "nope"],
                body: ByteBuffer(string: #"{"retention_days": 7}"#))
            #expect(wrong.status == .unauthorized)
            #expect(try await store.readStream(SystemSettings.stream) == nil)
            #expect(try await client.send(.get, "/api/system/severity").status == .unauthorized)
            #expect(try await client.call(.get, "/api/system/config", key: "s3cret").status == .ok)
            let accepted = try await client.execute(
                uri: "/api/system/severity", method: .put, headers: [HTTPField.Name("X-API-Key")!: "s3cret"],
                body: body)
            #expect(accepted.status == .ok)
            let event = try #require(try await store.readStream(SystemSettings.stream)?.events.first)
            let metadata = try EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8))
            #expect(metadata.actor == "admin")
        }
    }
}
