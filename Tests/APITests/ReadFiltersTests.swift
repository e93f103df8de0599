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

/// The list filters and the search operators, over a small imported history whose every
/// answer is known.
@Suite(.scratchApp) struct ReadFiltersTests {
    static func date(_ text: String) -> Date { ImportedHistory.date(text) }

    /// Two cameras; detections 1 (front, person, 03-01 10:00), 2 (front, car, 03-01 11:00),
    /// 3 (back, person, 03-02 09:00), 4 (back, dog, 03-03 00:00), 5 (front, person, 03-03 23:59).
    /// Security events: 1 (front, 03-01, detections 1 and 2), 2 (back, 03-02, 3), 3 (back, 03-03,
    /// 4), each analyzed with the summary below.
    static func seed(_ store: EventStore) async throws {
        var history = ImportedHistory()
        try history.camera("front_door", name: "Front Door")
        try history.camera("back_yard", name: "Back Yard")
        try history.detection(1, camera: "front_door", object: "person", at: "2026-03-01T10:00:00Z")
        try history.detection(2, camera: "front_door", object: "car", at: "2026-03-01T11:00:00Z")
        try history.detection(3, camera: "back_yard", object: "person", at: "2026-03-02T09:00:00Z")
        try history.detection(4, camera: "back_yard", object: "dog", at: "2026-03-03T00:00:00Z")
        try history.detection(5, camera: "front_door", object: "person", at: "2026-03-03T23:59:00Z")
        let events: [(Int64, String, String, [Int64], [String], String)] = [
            (
                1, "front_door", "2026-03-01T10:00:00Z", [1, 2], ["person", "car"],
                "A person with a crowbar near the door"
            ),
            (2, "back_yard", "2026-03-02T09:00:00Z", [3], ["person"], "Delivery person leaves a parcel"),
            (3, "back_yard", "2026-03-03T00:00:00Z", [4], ["dog"], "A dog crosses the yard"),
        ]
        for (id, camera, at, detectionIDs, types, summary) in events {
            try history.add(
                SecurityEventOpened(
                    id: id, cameraId: camera, batchId: "b\(id)", startedAt: date(at), detectionIds: detectionIDs,
                    objectTypes: types))
            try history.add(
                SecurityEventClosed(id: id, endedAt: date(at), detectionIds: detectionIDs, objectTypes: types))
            try history.add(SecurityEventAnalyzed(id: id, riskScore: 40, summary: summary, reasoning: "r"))
        }
        try await history.append(to: store)
    }

    /// The ids a list or search answers, in its order.
    static func ids(_ client: any TestClientProtocol, _ uri: String, key: String) async throws -> [Int] {
        try #require(try await client.getJSON(uri)[key] as? [[String: Any]]).compactMap { $0["id"] as? Int }
    }

    static func seeded() async throws -> TestApp {
        let app = try TestApp.current
        try await seed(app.store)
        try await waitUntil("the history is applied") {
            let searched = try await app.client.getJSON("/api/events/search?q=yard")["total_count"] as? Int
            let detections = try await app.client.getJSON("/api/detections?limit=1")["count"] as? Int
            return searched == 1 && detections == 5
        }
        return app
    }

    @Test func anEventsDetections() async throws {
        let client = try await Self.seeded().client
        #expect(try await Set(Self.ids(client, "/api/events/1/detections", key: "detections")) == [1, 2])
        #expect(try await Self.ids(client, "/api/events/3/detections", key: "detections") == [4])
        let missing = try await client.send(.get, "/api/events/999/detections")
        #expect(missing.status == .notFound)
    }

    @Test func detectionFilters() async throws {
        let client = try await Self.seeded().client
        func ids(_ query: String) async throws -> Set<Int> {
            Set(try await Self.ids(client, "/api/detections?\(query)", key: "detections"))
        }
        #expect(try await ids("object_type=person") == [1, 3, 5])
        #expect(try await ids("object_type=person&camera_id=front_door") == [1, 5])
        #expect(try await ids("object_type=cat").isEmpty)
        // Both ends inclusive.
        #expect(try await ids("start_date=2026-03-01T11:00:00Z&end_date=2026-03-03T00:00:00Z") == [2, 3, 4])
        #expect(try await ids("start_date=2026-03-03T00:00:00Z") == [4, 5])
        #expect(try await ids("end_date=2026-03-01T10:59:59Z") == [1])
        #expect(
            try await client.getJSON("/api/detections?object_type=person&start_date=2026-03-02T00:00:00Z")["count"]
                as? Int == 2)
    }

    @Test func eventFilters() async throws {
        let client = try await Self.seeded().client
        func ids(_ query: String) async throws -> Set<Int> {
            Set(try await Self.ids(client, "/api/events?\(query)", key: "events"))
        }
        #expect(try await ids("object_type=person") == [1, 2])
        #expect(try await ids("object_type=car") == [1])
        #expect(try await ids("object_type=person&camera_id=back_yard") == [2])
        #expect(try await ids("start_date=2026-03-02T00:00:00Z&end_date=2026-03-03T00:00:00Z") == [2, 3])
        #expect(try await ids("end_date=2026-03-02T08:59:59Z") == [1])
    }

    @Test func searchOperators() async throws {
        let client = try await Self.seeded().client
        func ids(_ q: String, _ more: String = "") async throws -> Set<Int> {
            let query = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            return Set(try await Self.ids(client, "/api/events/search?q=\(query)\(more)", key: "results"))
        }
        #expect(try await ids("person") == [1, 2])
        #expect(try await ids("person -delivery") == [1])
        #expect(try await ids("dog or crowbar") == [1, 3])
        #expect(try await ids("dog crowbar").isEmpty)  // words are ANDed
        #expect(try await ids("\"near the door\"") == [1])
        #expect(try await ids("\"door near\"").isEmpty)  // a phrase keeps its order
        #expect(try await ids("persons") == [1, 2])  // English stemming
        #expect(try await ids("person", "&camera_id=back_yard") == [2])
        #expect(try await ids("person", "&object_type=car") == [1])
    }

    /// Queries as forms and Python's `requests` write them: `+` is a space, an empty value is no
    /// filter, and what a raw `+` was in a time's offset or a cursor is still understood.
    @Test func queriesAsFormsWriteThem() async throws {
        let client = try await Self.seeded().client
        func ids(_ route: String, _ key: String) async throws -> Set<Int> {
            Set(try await Self.ids(client, route, key: key))
        }
        #expect(try await ids("/api/events/search?q=person+-delivery", "results") == [1])
        #expect(try await ids("/api/events/search?q=dog+or+crowbar", "results") == [1, 3])
        #expect(try await ids("/api/events/search?q=%22near+the+door%22", "results") == [1])
        #expect(try await ids("/api/events/search?q=door+near", "results") == [1])
        // Every filter sent, none chosen: the whole list.
        #expect(
            try await ids("/api/events?camera_id=&risk_level=&object_type=&cursor=&start_date=", "events") == [1, 2, 3])
        #expect(
            try await ids("/api/detections?camera_id=&object_type=&end_date=&limit=", "detections") == [1, 2, 3, 4, 5])
        // 12:00+01:00 is 11:00Z, typed raw; and with a space (a `+`) between date and time.
        #expect(try await ids("/api/detections?start_date=2026-03-01T12:00:00+01:00", "detections") == [2, 3, 4, 5])
        #expect(try await ids("/api/detections?start_date=2026-03-01+12:00:00+01:00", "detections") == [2, 3, 4, 5])
        // A cursor with a `+` in its base64 (a text id past ASCII), put into the URL unescaped.
        let cursor = Data(#"{"id":"ž","created_at":"2026-03-02T09:00:00Z"}"#.utf8).base64EncodedString()
        #expect(cursor.contains("+"))
        let raw = try await client.send(.get, "/api/cameras?limit=10&cursor=\(cursor)")
        let escaped = try await client.send(
            .get, "/api/cameras?limit=10&cursor=\(cursor.replacingOccurrences(of: "+", with: "%2B"))")
        #expect(raw.status == .ok, "\(String(buffer: raw.body))")
        #expect(escaped.status == .ok, "\(String(buffer: escaped.body))")
        #expect(String(buffer: raw.body) == String(buffer: escaped.body))
    }
}
