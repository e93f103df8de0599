import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Projections
import Redis
import Synthetic
import Testing
import VigilTesting

/// `/api/analytics/*` over a small history whose every number is known.
@Suite struct AnalyticsAPITests {
    static let range = "start_date=2026-02-28&end_date=2026-03-04"

    static func date(_ text: String) -> Date { EventCoding.parseTimestamp(text)! }

    /// Two cameras; on 03-01 front_door has events scored 0, 9, 10 and back_yard one of 100; nothing
    /// on 03-02; on 03-03 front_door has 99, 100, 50 and one not analyzed yet. Detections: 3
    /// persons at front_door and a car at back_yard on 03-01; 2 dogs and a person at front_door on
    /// 03-03, one of them at 23:59:59.999 (still 03-03, UTC).
    static func seed(_ store: EventStore) async throws {
        var history = ImportedHistory()
        try history.camera("front_door", name: "Front Door")
        try history.camera("back_yard", name: "Back Yard")
        var detection: Int64 = 0
        func detect(_ camera: String, _ type: String, _ at: String) throws {
            detection += 1
            try history.detection(detection, camera: camera, object: type, at: at)
        }
        for second in 0..<3 { try detect("front_door", "person", "2026-03-01T10:00:0\(second)Z") }
        try detect("back_yard", "car", "2026-03-01T23:00:00Z")
        try detect("front_door", "dog", "2026-03-03T00:00:00Z")
        try detect("front_door", "dog", "2026-03-03T23:59:59.999Z")
        try detect("front_door", "person", "2026-03-03T12:00:00Z")
        let events: [(Int64, String, String, Int?)] = [
            (1, "front_door", "2026-03-01T10:00:00Z", 0), (2, "front_door", "2026-03-01T11:00:00Z", 9),
            (3, "front_door", "2026-03-01T12:00:00Z", 10), (4, "back_yard", "2026-03-01T23:00:00Z", 100),
            (5, "front_door", "2026-03-03T00:00:00Z", 99), (6, "front_door", "2026-03-03T01:00:00Z", 100),
            (7, "front_door", "2026-03-03T23:59:59Z", 50), (8, "front_door", "2026-03-03T12:00:00Z", nil),
        ]
        for (id, camera, at, score) in events {
            try history.add(
                SecurityEventOpened(
                    id: id, cameraId: camera, batchId: "b\(id)", startedAt: date(at), detectionIds: [], objectTypes: [])
            )
            if let score {
                try history.add(SecurityEventAnalyzed(id: id, riskScore: score, summary: "s", reasoning: "r"))
            }
        }
        try await history.append(to: store)
    }

    static func configure(_ configuration: inout ServerConfiguration) {
        configuration.redis = sharedRedisSettings()
        configuration.redisPrefix = "test-\(UUID().uuidString.prefix(8)):"
    }

    static let cacheHeader = HTTPField.Name("X-Cache")!

    static func points(_ body: [String: Any], _ field: String) -> [Double] {
        (body["data_points"] as? [[String: Any]] ?? []).map { ($0[field] as? NSNumber)?.doubleValue ?? -1 }
    }

    @Test("Days without data are zeros, UTC days, uptime, object shares, averages, a camera filter")
    func gapsAndDays() async throws {
        try await withApp(configure: Self.configure) { store, client in
            try await Self.seed(store)
            let trends = try await client.getEventually("/api/analytics/detection-trends?\(Self.range)") {
                $0["total_detections"] as? Int == 7
            }
            let dates = (trends["data_points"] as? [[String: Any]] ?? []).map { $0["date"] as? String ?? "" }
            #expect(dates == ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"])
            #expect(Self.points(trends, "count") == [0, 4, 0, 3, 0])
            #expect(trends["start_date"] as? String == "2026-02-28")
            #expect(trends["end_date"] as? String == "2026-03-04")
            let back = try await client.getJSON(
                "/api/analytics/detection-trends?\(Self.range)&camera_id=back_yard")
            #expect(Self.points(back, "count") == [0, 1, 0, 0, 0])
            #expect(back["total_detections"] as? Int == 1)

            try await waitUntil("every analysis is applied") {
                let body = try await client.getJSON("/api/analytics/risk-score-distribution?\(Self.range)")
                return body["total_events"] as? Int == 7
            }
            let history = try await client.getJSON("/api/analytics/risk-history?\(Self.range)")
            #expect(Self.points(history, "low") == [0, 3, 0, 0, 0])
            #expect(Self.points(history, "medium") == [0, 0, 0, 1, 0])
            #expect(Self.points(history, "high") == [0, 0, 0, 0, 0])
            #expect(Self.points(history, "critical") == [0, 1, 0, 2, 0])

            let trendsOfScores = try await client.getJSON("/api/analytics/risk-score-trends?\(Self.range)")
            #expect(Self.points(trendsOfScores, "avg_score") == [0, 29.75, 0, 83, 0])
            #expect(Self.points(trendsOfScores, "count") == [0, 4, 0, 3, 0])

            // The cameras read model applies the seeded cameras on its own time.
            let uptime = try await client.getEventually("/api/analytics/camera-uptime?\(Self.range)") {
                ($0["cameras"] as? [[String: Any]])?.count == 2
            }
            let cameras = try #require(uptime["cameras"] as? [[String: Any]])
            #expect(cameras.map { $0["camera_id"] as? String } == ["back_yard", "front_door"])  // by name
            #expect(cameras.map { ($0["uptime_percentage"] as? NSNumber)?.doubleValue } == [20, 40])
            #expect(cameras.map { $0["detection_count"] as? Int } == [1, 6])
            let oneDay = try await client.getJSON(
                "/api/analytics/camera-uptime?start_date=2026-03-03&end_date=2026-03-03&camera_id=front_door")
            #expect(
                (oneDay["cameras"] as? [[String: Any]])?.map { ($0["uptime_percentage"] as? NSNumber)?.doubleValue }
                    == [100])

            let objects = try await client.getJSON("/api/analytics/object-distribution?\(Self.range)")
            let types = try #require(objects["object_types"] as? [[String: Any]])
            #expect(types.map { $0["object_type"] as? String } == ["person", "dog", "car"])
            #expect(types.map { $0["count"] as? Int } == [4, 2, 1])
            #expect(types.map { ($0["percentage"] as? NSNumber)?.doubleValue } == [57.14, 28.57, 14.29])
            #expect(objects["total_detections"] as? Int == 7)
            let empty = try await client.getJSON(
                "/api/analytics/object-distribution?start_date=2026-01-01&end_date=2026-01-02")
            #expect((empty["object_types"] as? [Any])?.isEmpty == true)
            #expect(empty["total_detections"] as? Int == 0)
        }
    }

    @Test("Score buckets: min inclusive, max exclusive, 100 in the last bucket; a new analysis moves an event")
    func buckets() async throws {
        try await withApp(configure: Self.configure) { store, client in
            try await Self.seed(store)
            let uri = "/api/analytics/risk-score-distribution?\(Self.range)"
            let tens = try await client.getEventually(uri) { $0["total_events"] as? Int == 7 }
            func counts(_ body: [String: Any]) -> [Int] {
                (body["buckets"] as? [[String: Any]] ?? []).map { $0["count"] as? Int ?? -1 }
            }
            let ten = try #require(tens["buckets"] as? [[String: Any]])
            #expect(ten.map { $0["min_score"] as? Int } == Array(stride(from: 0, to: 100, by: 10)))
            #expect(ten.map { $0["max_score"] as? Int } == Array(stride(from: 10, through: 100, by: 10)))
            // 0, 9 | 10 | 50 | 99, 100, 100
            #expect(counts(tens) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3])
            #expect(tens["bucket_size"] as? Int == 10)
            let thirties = try await client.getJSON("\(uri)&bucket_size=30")
            #expect(counts(thirties) == [3, 1, 0, 3])
            #expect((thirties["buckets"] as? [[String: Any]])?.last?["max_score"] as? Int == 120)
            let ones = try await client.getJSON("\(uri)&bucket_size=1")
            #expect(counts(ones).count == 100)
            #expect(counts(ones)[99] == 3)
            #expect(counts(ones)[0] == 1)
            let fifties = try await client.getJSON("\(uri)&bucket_size=50")
            #expect(counts(fifties) == [3, 4])
            for size in ["0", "51", "x"] {
                #expect(try await client.send(.get, "\(uri)&bucket_size=\(size)").status == .unprocessableContent)
            }

            // A second analysis of event 7 (50 → 95) moves it; the event without a score gets one.
            let metadata = EventMetadata(actor: "test")
            for analyzed in [
                SecurityEventAnalyzed(id: 7, riskScore: 95, summary: "again", reasoning: "r"),
                SecurityEventAnalyzed(id: 8, riskScore: 31, summary: "late", reasoning: "r"),
            ] {
                _ = try await store.append(to: analyzed.stream, events: [try NewEvent(analyzed, metadata: metadata)])
            }
            let moved = try await client.getEventually(uri) { $0["total_events"] as? Int == 8 }
            #expect(counts(moved) == [2, 1, 0, 1, 0, 0, 0, 0, 0, 4])
            let history = try await client.getJSON("/api/analytics/risk-history?\(Self.range)")
            #expect(Self.points(history, "medium") == [0, 0, 0, 1, 0])
            #expect(Self.points(history, "critical") == [0, 1, 0, 3, 0])
        }
    }

    @Test("Dates: both required (422), a bad date 422, start after end 400, one day is one point")
    func dates() async throws {
        try await withApp { _, client in
            for route in [
                "detection-trends", "risk-history", "camera-uptime", "object-distribution", "risk-score-distribution",
                "risk-score-trends",
            ] {
                let missing = try await client.send(.get, "/api/analytics/\(route)?end_date=2026-03-01")
                #expect(missing.status == .unprocessableContent, "\(route)")
                let issues = try #require(try json(missing)["detail"] as? [[String: Any]])
                #expect(issues.map { $0["loc"] as? [String] } == [["query", "start_date"]])
                #expect(issues.first?["type"] as? String == "missing")
                let both = try await client.send(.get, "/api/analytics/\(route)")
                #expect((try json(both)["detail"] as? [Any])?.count == 2)
                let reversed = try await client.send(
                    .get, "/api/analytics/\(route)?start_date=2026-03-02&end_date=2026-03-01")
                #expect(reversed.status == .badRequest)
                #expect(try json(reversed)["detail"] as? String == "start_date must be before or equal to end_date")
                let bad = try await client.send(
                    .get, "/api/analytics/\(route)?start_date=2026-13-01&end_date=2026-03-01")
                #expect(bad.status == .unprocessableContent)
            }
            let one = try await client.getJSON(
                "/api/analytics/detection-trends?start_date=2026-03-01&end_date=2026-03-01")
            #expect((one["data_points"] as? [Any])?.count == 1)
            let zone = try await client.send(
                .get, "/api/analytics/detection-trends?start_date=2026-03-01&end_date=2026-03-01&tz=Europe/Paris")
            #expect(zone.status == .unprocessableContent)
            let huge = try await client.send(
                .get, "/api/analytics/detection-trends?start_date=1900-01-01&end_date=2026-03-01")
            #expect(huge.status == .badRequest)
        }
    }

    @Test("ETag: If-None-Match gives 304 until the read model moves; the Redis copy is served under the same tag")
    func entityTags() async throws {
        try await withApp(configure: Self.configure) { store, client in
            try await Self.seed(store)
            let uri = "/api/analytics/detection-trends?\(Self.range)"
            _ = try await client.getEventually(uri) { $0["total_detections"] as? Int == 7 }
            try await waitUntil("every analysis is applied") {
                let body = try await client.getJSON("/api/analytics/risk-score-distribution?\(Self.range)")
                return body["total_events"] as? Int == 7
            }
            // The tag is made from analytics' and cameras' state: both caught up with the whole
            // seed before it is taken (cameras applies the detections too, on its own time).
            let settled = try await store.readSettled(after: .start)
            let caughtUp = try await store.waitForProjections(
                ["analytics", "cameras"], toReach: settled.next, timeout: .seconds(60))
            #expect(caughtUp)
            let first = try await client.send(.get, uri)
            let tag = try #require(first.headers[.eTag])
            #expect(tag.hasPrefix("\"") && tag.hasSuffix("\""))
            let second = try await client.send(.get, uri)
            #expect(second.headers[.eTag] == tag)
            #expect(String(buffer: second.body) == String(buffer: first.body))
            #expect(second.headers[Self.cacheHeader] == "HIT")
            let notModified = try await client.execute(uri: uri, method: .get, headers: [.ifNoneMatch: tag], body: nil)
            #expect(notModified.status == .notModified)
            #expect(notModified.body.readableBytes == 0)
            #expect(notModified.headers[.eTag] == tag)
            // Other parameters, another tag.
            let other = try await client.send(.get, "\(uri)&camera_id=front_door")
            #expect(other.headers[.eTag] != tag)

            // A new detection: the read model moves, the old tag no longer matches, the cache is not used.
            let detection = DetectionRecorded(
                id: 100, cameraId: "front_door", filePath: "/export/front_door/100.jpg",
                detectedAt: Self.date("2026-03-02T08:00:00Z"), objectType: "cat", confidence: 0.9, bboxX: 0, bboxY: 0,
                bboxWidth: 10, bboxHeight: 10)
            _ = try await store.append(
                to: detection.stream,
                events: [try NewEvent(detection, metadata: EventMetadata(actor: "test", imported: true))])
            let fresh = try await client.getEventually(uri) { $0["total_detections"] as? Int == 8 }
            #expect(Self.points(fresh, "count") == [0, 4, 1, 3, 0])
            let changed = try await client.execute(uri: uri, method: .get, headers: [.ifNoneMatch: tag], body: nil)
            #expect(changed.status == .ok)
            #expect(changed.headers[.eTag] != tag)

            // risk-history's tag follows the thresholds.
            let historyURI = "/api/analytics/risk-history?\(Self.range)"
            let historyTag = try #require(try await client.send(.get, historyURI).headers[.eTag])
            let put = try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 5, "medium_max": 45, "high_max": 99}"#)
            #expect(put.status == .ok)
            let after = try await client.execute(
                uri: historyURI, method: .get, headers: [.ifNoneMatch: historyTag], body: nil)
            #expect(after.status == .ok)
            let body = try json(after)
            #expect(Self.points(body, "low") == [0, 1, 0, 0, 0])
            #expect(Self.points(body, "medium") == [0, 2, 0, 0, 0])
            #expect(Self.points(body, "high") == [0, 0, 0, 2, 0])
            #expect(Self.points(body, "critical") == [0, 1, 0, 1, 0])
        }
    }

    @Test("A rebuild of analytics from the log answers exactly what the live read model answered")
    func rebuildEqualsLive() async throws {
        try await withApp(configure: Self.configure) { store, client in
            let history = SyntheticHistory(start: SystemAPITests.start, spacing: 5 * 3600)
            try await store.appendSynthetic(history, events: 0..<300, detectionsPerEvent: 2)
            // A reanalysis and a removed camera, so the rebuild replays moves and deletions too.
            let again = SecurityEventAnalyzed(id: 5, riskScore: 1, summary: "again", reasoning: "r")
            _ = try await store.append(
                to: again.stream, events: [try NewEvent(again, metadata: EventMetadata(actor: "test"))])
            let removed = try await client.send(.delete, "/api/cameras/garage")
            #expect(removed.status == .noContent)
            let range = "start_date=2026-05-01&end_date=2026-09-01"
            let routes =
                [
                    "detection-trends", "risk-history", "camera-uptime", "object-distribution",
                    "risk-score-distribution",
                    "risk-score-trends",
                ].map { "/api/analytics/\($0)?\(range)" } + [
                    "/api/system/severity/preview?low_max=10&medium_max=20&high_max=30"
                ]
            // Caught up: the removal (the log's last event) is applied.
            let kept = SystemAPITests.scored(history, 300).filter { $0.camera != "garage" }.count
            try await waitUntil("analytics has applied the removal") {
                let trends = try await client.getJSON("/api/analytics/detection-trends?\(range)")
                let scores = try await client.getJSON("/api/analytics/risk-score-distribution?\(range)")
                return trends["total_detections"] as? Int == 2 * kept && scores["total_events"] as? Int == kept
            }
            var live: [String] = []
            for route in routes { live.append(String(buffer: try await client.send(.get, route).body)) }
            #expect(kept > 0 && kept < 300)

            let rebuild = try await client.send(.post, "/api/projections/analytics/rebuild")
            #expect(rebuild.status == .accepted)
            try await waitUntil("the rebuilt generation is live and caught up") {
                let statuses = try await client.getJSON("/api/projections")["projections"] as? [[String: Any]] ?? []
                let analytics = statuses.first { $0["name"] as? String == "analytics" }
                return analytics?["generation"] as? Int == 2 && analytics?["rebuild"] is NSNull
                    && analytics?["lag_events"] as? Int == 0
            }
            for (index, route) in routes.enumerated() {
                let rebuilt = try await client.send(.get, route)
                #expect(String(buffer: rebuilt.body) == live[index], "\(route)")
                // Computed from the new generation, not the live one's copy in the cache.
                if route.hasPrefix("/api/analytics/") {
                    #expect(rebuilt.headers[Self.cacheHeader] == "MISS", "\(route)")
                    // Cached again (a cache write may give up under load: then the next one).
                    try await waitUntil("\(route) is cached again", timeout: .seconds(30)) {
                        try await client.send(.get, route).headers[Self.cacheHeader] == "HIT"
                    }
                }
            }
        }
    }
}
