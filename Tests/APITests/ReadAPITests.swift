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

extension TestClientProtocol {
    func send(_ method: HTTPRequest.Method, _ uri: String, json body: String? = nil) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: [:], body: body.map { ByteBuffer(string: $0) })
    }

    func getJSON(_ uri: String) async throws -> [String: Any] {
        let response = try await send(.get, uri)
        #expect(response.status == .ok, "GET \(uri): \(String(buffer: response.body))")
        return try json(response)
    }

    /// Waits until `/api/events` counts `count` events (the projection has applied them).
    func waitForEvents(_ count: Int, query: String = "") async throws {
        try await waitUntil("/api/events?\(query) counts \(count)") {
            try await getJSON("/api/events?limit=1&\(query)")["count"] as? Int == count
        }
    }

    /// Walks a list with `next_cursor` from the first page: the pages' items and their counts.
    func walk(
        _ path: String, key: String, limit: Int, between: (Int) async throws -> Void = { _ in }
    )
        async throws -> (pages: [[[String: Any]]], counts: [Int])
    {
        var pages: [[[String: Any]]] = []
        var counts: [Int] = []
        var cursor: String?
        repeat {
            let separator = path.contains("?") ? "&" : "?"
            let uri =
                "\(path)\(separator)limit=\(limit)"
                + (cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" } ?? "")
            let body = try await getJSON(uri)
            let items = try #require(body[key] as? [[String: Any]])
            pages.append(items)
            counts.append(try #require(body["count"] as? Int))
            cursor = body["next_cursor"] as? String
            #expect((body["has_more"] as? Bool) == (cursor != nil))
            #expect(body["deprecation_warning"] is NSNull)
            try await between(pages.count)
        } while cursor != nil && pages.count < 1000
        return (pages, counts)
    }
}

func ids(_ items: [[String: Any]]) -> [Int] { items.compactMap { $0["id"] as? Int } }

@Suite("Read API: cursor pagination")
struct PaginationTests {
    static let start = Date(timeIntervalSince1970: 1_795_000_000)

    @Test("The seed's walk: 25 events paged 8+8+8+1, each once, newest first, count 25 on every page")
    func seedWalk() async throws {
        try await withApp { store, client in
            // Every event starts at the same instant: the order rests on the id tie-break.
            try await store.appendSynthetic(SyntheticHistory(start: Self.start, spacing: 0), events: 0..<25)
            try await client.waitForEvents(25)
            let walk = try await client.walk("/api/events", key: "events", limit: 8)
            #expect(walk.pages.map(\.count) == [8, 8, 8, 1])
            #expect(walk.counts == [25, 25, 25, 25])
            #expect(walk.pages.flatMap(ids) == Array((1...25).reversed()))
        }
    }

    @Test("A walk is stable while newer events arrive: no duplicates, no gaps; count follows the inserts")
    func stableUnderInserts() async throws {
        try await withApp { store, client in
            let history = SyntheticHistory(start: Self.start, spacing: 30)
            try await store.appendSynthetic(history, events: 0..<40)
            try await client.waitForEvents(40)
            let walk = try await client.walk("/api/events", key: "events", limit: 7) { page in
                if page == 2 {
                    // Newer events (later start, higher ids) land in front of the walk.
                    try await store.appendSynthetic(history, events: 40..<50)
                    try await client.waitForEvents(50)
                }
            }
            let seen = walk.pages.flatMap(ids)
            #expect(seen == Array((1...40).reversed()))
            #expect(walk.counts.first == 40 && walk.counts.last == 50)
        }
    }

    @Test("Filters combine with cursors: each matching event once, in order, count exact on every page")
    func filteredWalk() async throws {
        try await withApp { store, client in
            let history = SyntheticHistory(cameraCount: 3, start: Self.start, spacing: 45)
            try await store.appendSynthetic(history, events: 0..<120)
            try await client.waitForEvents(120)
            // What the history holds, computed from the events themselves.
            var expected: [Int] = []
            var expectedDetections = 0
            for n in (0..<120).reversed() {
                let events = history.securityEvent(n, id: Int64(n + 1), firstDetectionID: Int64(n + 1))
                let opened = try #require(events.compactMap { $0 as? SecurityEventOpened }.first)
                let analyzed = try #require(events.compactMap { $0 as? SecurityEventAnalyzed }.first)
                guard opened.cameraId == "back_yard" else { continue }
                expectedDetections += 1
                if SeverityThresholds.defaults.level(analyzed.riskScore) == .high { expected.append(n + 1) }
            }
            #expect(expected.count > 3)
            let walk = try await client.walk("/api/events?camera_id=back_yard&risk_level=high", key: "events", limit: 3)
            #expect(walk.pages.flatMap(ids) == expected)
            #expect(Set(walk.counts) == [expected.count])
            for event in walk.pages.joined() {
                #expect(event["camera_id"] as? String == "back_yard" && event["risk_level"] as? String == "high")
            }

            // The detections read model has its own runner: `waitForEvents` said nothing of it (a
            // loaded run once walked it before it had applied anything).
            try await waitUntil("/api/detections?camera_id=back_yard counts \(expectedDetections)") {
                try await client.getJSON("/api/detections?limit=1&camera_id=back_yard")["count"] as? Int
                    == expectedDetections
            }
            let detections = try await client.walk("/api/detections?camera_id=back_yard", key: "detections", limit: 9)
            #expect(Set(detections.counts) == [expectedDetections])
            #expect(detections.pages.flatMap(ids).count == expectedDetections)
            #expect(Set(detections.pages.flatMap(ids)).count == expectedDetections)
        }
    }

    @Test("Offset paging still works, with the seed's deprecation text and a Deprecation header")
    func offsetPaging() async throws {
        try await withApp { store, client in
            try await store.appendSynthetic(SyntheticHistory(start: Self.start), events: 0..<12)
            try await client.waitForEvents(12)
            let response = try await client.send(.get, "/api/events?limit=5&offset=10")
            #expect(response.status == .ok)
            #expect(response.headers[HTTPField.Name("Deprecation")!] == "true")
            let body = try json(response)
            #expect(ids(try #require(body["events"] as? [[String: Any]])) == [2, 1])
            #expect(body["count"] as? Int == 12 && body["offset"] as? Int == 10 && body["has_more"] as? Bool == false)
            #expect(
                body["deprecation_warning"] as? String
                    == "Offset pagination is deprecated and will be removed in a future version. Please use "
                    + "cursor-based pagination instead by using the 'cursor' parameter with the 'next_cursor' value "
                    + "from the response.")
            let first = try await client.send(.get, "/api/events?limit=5&offset=0")
            #expect(first.headers[HTTPField.Name("Deprecation")!] == nil)
            #expect(try json(first)["deprecation_warning"] is NSNull)
        }
    }

    @Test("Every bad request gets the seed's error format")
    func errors() async throws {
        try await withApp { store, client in
            try await store.appendSynthetic(SyntheticHistory(start: Self.start), events: 0..<3)
            try await client.waitForEvents(3)
            let validation: [(String, [String], String)] = [
                ("/api/events?limit=0", ["query", "limit"], "greater_than_equal"),
                ("/api/events?limit=1001", ["query", "limit"], "less_than_equal"),
                ("/api/events?limit=ten", ["query", "limit"], "int_parsing"),
                ("/api/events?offset=-1", ["query", "offset"], "greater_than_equal"),
                ("/api/events?risk_level=severe", ["query", "risk_level"], "enum"),
                ("/api/events?reviewed=maybe", ["query", "reviewed"], "bool_parsing"),
                ("/api/events?start_date=yesterday", ["query", "start_date"], "datetime_from_date_parsing"),
                ("/api/events/abc", ["path", "event_id"], "int_parsing"),
                ("/api/detections?min_confidence=1.5", ["query", "min_confidence"], "less_than_equal"),
                ("/api/events/search", ["query", "q"], "missing"),
            ]
            for (uri, location, type) in validation {
                let response = try await client.send(.get, uri)
                #expect(response.status == .unprocessableContent, "\(uri)")
                let detail = try #require(try json(response)["detail"] as? [[String: Any]], "\(uri)")
                #expect(detail.first?["loc"] as? [String] == location, "\(uri)")
                #expect(detail.first?["type"] as? String == type, "\(uri)")
                #expect((detail.first?["msg"] as? String)?.isEmpty == false, "\(uri)")
            }
            let notJSON = Data("{\"id\": 3".utf8).base64EncodedString()
            let wrongID = Data(#"{"id":"x","created_at":"2026-01-01T00:00:00Z"}"#.utf8).base64EncodedString()
            let badTime = Data(#"{"id":3,"created_at":"soon"}"#.utf8).base64EncodedString()
            let good = Data(#"{"id":3,"created_at":"2026-11-18T11:06:40Z"}"#.utf8).base64EncodedString()
            let bad: [(String, HTTPResponse.Status, String)] = [
                ("/api/events?cursor=%25%25%25", .badRequest, "Invalid cursor: not valid base64"),
                ("/api/events?cursor=\(notJSON)", .badRequest, "Invalid cursor: not a JSON object"),
                ("/api/events?cursor=\(wrongID)", .badRequest, "Invalid cursor: 'id' must be an integer"),
                (
                    "/api/events?cursor=\(badTime)", .badRequest,
                    "Invalid cursor: 'created_at' is not an ISO 8601 timestamp"
                ),
                (
                    "/api/events?cursor=\(good)&offset=5", .badRequest,
                    "Cannot use both 'offset' and 'cursor' pagination. Choose one."
                ),
                (
                    "/api/events?start_date=2026-11-02&end_date=2026-11-01", .badRequest,
                    "start_date must be before or equal to end_date"
                ),
                ("/api/events/999", .notFound, "Event 999 not found"),
                ("/api/detections/999", .notFound, "Detection 999 not found"),
                ("/api/cameras/nowhere", .notFound, "Camera nowhere not found"),
                ("/api/events/999/detections", .notFound, "Event 999 not found"),
            ]
            for (uri, status, detail) in bad {
                let response = try await client.send(.get, uri)
                #expect(response.status == status, "\(uri)")
                #expect(try json(response)["detail"] as? String == detail, "\(uri)")
            }
            // URL-safe base64 without padding is a cursor too.
            let urlSafe = good.replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
            #expect(try await client.send(.get, "/api/events?cursor=\(urlSafe)").status == .ok)
        }
    }
}
