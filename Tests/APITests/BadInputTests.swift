import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing
import VigilTesting

@testable import API

/// Nothing a client sends may poison the log (issue 12): a corpus of bad requests over every
/// route, each answered with a 4xx in the seed's format, never a 5xx, and nothing appended.
@Suite struct BadInputTests {
    @Test func everyBadRequestIsA4xxInTheSeedsFormatAndWritesNothing() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            for bad in Self.corpus {
                let before = try await Self.eventCount(store)
                var headers: HTTPFields = [:]
                if let contentType = bad.contentType { headers[.contentType] = contentType }
                if let body = bad.body { headers[.contentLength] = String(body.count) }
                let response = try await client.execute(
                    uri: bad.uri, method: bad.method, headers: headers, body: bad.body.map { ByteBuffer(bytes: $0) })
                let text = String(buffer: response.body)
                #expect(response.status == bad.status, "\(bad): \(text)")
                #expect(response.status.code < 500, "\(bad): \(text)")
                let detail = try json(response)["detail"]
                switch bad.answer {
                case .detail(let expected):
                    #expect((detail as? String)?.contains(expected) == true, "\(bad): \(text)")
                case .issue(let loc, let type):
                    let issues = try #require(detail as? [[String: Any]], "\(bad): \(text)")
                    let match = issues.first { ($0["loc"] as? [Any])?.map { "\($0)" } == loc }
                    #expect(match?["type"] as? String == type, "\(bad): \(text)")
                    #expect((match?["msg"] as? String)?.isEmpty == false, "\(bad): \(text)")
                case .syntax(let prefix):
                    let issues = try #require(detail as? [[String: Any]], "\(bad): \(text)")
                    let issue = try #require(issues.first, "\(bad): \(text)")
                    let loc = (issue["loc"] as? [Any] ?? []).map { "\($0)" }
                    #expect(
                        Array(loc.prefix(prefix.count)) == prefix && loc.count == prefix.count + 1, "\(bad): \(text)")
                    #expect(issue["type"] as? String == "json_invalid", "\(bad): \(text)")
                    #expect(issue["msg"] as? String == "JSON decode error", "\(bad): \(text)")
                }
                #expect(try await Self.eventCount(store) == before, "\(bad) appended")
            }
            // The same requests, well formed, are accepted: the corpus fails for its bad part.
            // (Counted by type: the batch aggregator appends events of its own for them.)
            let before = try await IngestAPITests.count(store, type: DetectionRecorded.type)
            let good = try await client.send(.post, "/api/detections", json: Self.detection(at: "2026-11-20T10:00:00Z"))
            #expect(good.status == .created, "\(String(buffer: good.body))")
            let typed = try await client.execute(
                uri: "/api/detections", method: .post, headers: [.contentType: "application/json; charset=utf-8"],
                body: ByteBuffer(string: Self.detection(#", "enrichment_data": {"plate": "AB\u00e91 \ud83d\ude00"}"#)))
            #expect(typed.status == .created, "\(String(buffer: typed.body))")
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == before + 2)
            for route in Self.analytics {
                let response = try await client.send(
                    .get, "/api/analytics/\(route)?start_date=2024-02-28&end_date=2024-03-01")
                #expect(response.status == .ok, "\(route): \(String(buffer: response.body))")
            }
        }
    }

    /// An event time outside a configured window is refused; inside it, accepted.
    @Test func theEventTimeWindowIsConfigurable() async throws {
        try await withApp(configure: {
            $0.eventTimes = EventTimeWindow(earliest: Timestamp.parse("2020-01-01")!, maximumFuture: 0)
        }) { store, client in
            try await IngestAPITests.register(client, "porch")
            let before = try await Self.eventCount(store)
            let detectionsBefore = try await IngestAPITests.count(store, type: DetectionRecorded.type)
            let old = try await client.send(.post, "/api/detections", json: Self.detection(at: "2019-12-31T23:59:59Z"))
            #expect(old.status == .unprocessableContent)
            let issue = try #require((try json(old)["detail"] as? [[String: Any]])?.first)
            #expect(issue["msg"] as? String == "Input should be greater than or equal to 2020-01-01T00:00:00Z")
            let ahead = Timestamp.format(Date().addingTimeInterval(3600))
            #expect(
                try await client.send(.post, "/api/detections", json: Self.detection(at: ahead)).status
                    == .unprocessableContent)
            #expect(try await Self.eventCount(store) == before)
            let good = try await client.send(.post, "/api/detections", json: Self.detection(at: "2020-01-01T00:00:00Z"))
            #expect(good.status == .created)
            // The detection, counted alone: the batch aggregator opens its security event a
            // moment later (a reactor's event, not the POST's), and a count of every event
            // raced it (lost once under load in the API suite).
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == detectionsBefore + 1)
        }
    }

    /// A cursor's `created_at` in any form the reader takes (a comma, 200 fraction digits, an
    /// offset past PostgreSQL's ±15:59, a year-0000 text naming an instant of year 1) pages from
    /// the instant it names, as the same instant in the server's own form does: once a 500.
    @Test func cursorTimesInEveryAcceptedFormPageFromTheirInstant() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "porch")
            for time in ["2026-11-20T10:00:00Z", "2026-11-30T23:59:59.5Z", "2026-11-30T23:59:59.75Z"] {
                let posted = try await client.send(.post, "/api/detections", json: Self.detection(at: time))
                #expect(posted.status == .created)
            }
            let forms = [
                ("2026-12-01T00:00:00,5Z", "2026-12-01T00:00:00.500000Z"),
                ("2026-12-01T00:00:00." + String(repeating: "9", count: 200) + "Z", "2026-12-01T00:00:01.000000Z"),
                ("2026-12-01T23:59:00+23:59", "2026-12-01T00:00:00.000000Z"),
                ("2026-11-30T23:59:59,6-00:00", "2026-11-30T23:59:59.600000Z"),
                ("0000-12-31T23:59:59.9999999-00:01", "0001-01-01T00:01:00.000000Z"),
            ]
            // The same code reads every list's cursor; these lists hold still once they show
            // the three detections and the camera's registration. (Not "caught up with
            // `head()`": the head stops below a transaction still running, such as the batch
            // aggregator's, which the last detection may have committed after.)
            try await waitUntil("the lists show what was written") {
                let detections = try await client.getJSON("/api/detections?limit=10")["count"] as? Int
                let audit = try await client.getJSON("/api/audit?limit=10")["count"] as? Int
                return detections == 3 && (audit ?? 0) >= 1
            }
            for route in ["/api/detections", "/api/audit", "/api/logs"] {
                for (given, canonical) in forms {
                    let cursor = { (time: String) in Self.base64(#"{"id": 99999, "created_at": "\#(time)"}"#) }
                    let page = try await client.send(.get, "\(route)?limit=10&cursor=\(cursor(given))")
                    let expected = try await client.send(.get, "\(route)?limit=10&cursor=\(cursor(canonical))")
                    #expect(page.status == .ok, "\(route) \(given): \(String(buffer: page.body))")
                    #expect(expected.status == .ok, "\(route) \(canonical): \(String(buffer: expected.body))")
                    #expect(String(buffer: page.body) == String(buffer: expected.body), "\(route) \(given)")
                }
            }
            // The detections before 23:59:59.6 and not the one after it: the fraction counted.
            let cursor = Self.base64(#"{"id": 99999, "created_at": "2026-11-30T23:59:59,6-00:00"}"#)
            let page = try await client.getJSON("/api/detections?limit=10&cursor=\(cursor)")
            let times = (page["detections"] as? [[String: Any]] ?? []).compactMap { $0["detected_at"] as? String }
            #expect(times.count == 2 && times.allSatisfy { !$0.hasPrefix("2026-11-30T23:59:59.75") }, "\(page)")
        }
    }

    /// A camera whose name makes an id longer than 100 characters takes detections, sightings
    /// and rules naming it (its id once registered, then refused everywhere else).
    @Test func aCameraWithALongIdTakesDetections() async throws {
        try await withApp { _, client in
            let name = "Long Camera Name " + String(repeating: "x", count: 200)
            let registered = try await client.send(
                .post, "/api/cameras", json: #"{"name": "\#(name)", "folder_path": "/export/long"}"#)
            #expect(registered.status == .created, "\(String(buffer: registered.body))")
            let id = try #require(try json(registered)["id"] as? String)
            #expect(id.count == 217)
            let posted = try await client.send(.post, "/api/detections", json: IngestAPITests.detection(camera: id))
            #expect(posted.status == .created, "\(String(buffer: posted.body))")
            let sighting = try await client.send(
                .post, "/api/entities/sightings",
                json: #"{"entity_type": "person", "camera_id": "\#(id)", "seen_at": "2026-11-20T10:00:00Z"}"#)
            #expect(sighting.status.code < 300, "\(String(buffer: sighting.body))")
            let rule = try await client.send(
                .post, "/api/alerts/rules", json: #"{"name": "long", "camera_ids": ["\#(id)"]}"#)
            #expect(rule.status == .created, "\(String(buffer: rule.body))")
            let tooLong = IngestAPITests.detection(camera: String(repeating: "x", count: Camera.maxIDLength + 1))
            let refused = try await client.send(.post, "/api/detections", json: tooLong)
            #expect(refused.status == .unprocessableContent)
            #expect(String(buffer: refused.body).contains("string_too_long"))
        }
    }

    /// The body policy holds line by line: an unknown field or a control character in one line
    /// rejects that line, named, and the others are written.
    @Test func ndjsonLinesFollowTheBodyPolicy() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            let lines = [
                Self.detection(), Self.detection(#", "colour": "red""#),
                IngestAPITests.detection(camera: "porch", object: #"car\u0007"#),
            ]
            let before = try await IngestAPITests.count(store, type: DetectionRecorded.type)
            let response = try await client.execute(
                uri: "/api/detections/batch", method: .post, headers: [.contentType: "application/x-ndjson"],
                body: ByteBuffer(string: lines.joined(separator: "\n")))
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let report = try json(response)
            #expect(report["accepted"] as? Int == 1)
            #expect(report["rejected"] as? Int == 2)
            let errors = try #require(report["errors"] as? [[String: Any]])
            let issues = errors.compactMap { ($0["detail"] as? [[String: Any]])?.first }
            #expect(
                issues.map { ($0["loc"] as? [Any])?.map { "\($0)" } ?? [] } == [
                    ["line", "2", "colour"], ["line", "3", "object_type"],
                ])
            #expect(issues.map { $0["type"] as? String } == ["extra_forbidden", "value_error"])
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == before + 1)
        }
    }

    /// 5,000 good lines and one with a NUL: the good ones are written, the bad one reported, and
    /// a retry with the same key answers the same report and writes nothing more.
    @Test func ndjsonWithANulLineWritesTheGoodLinesAndReportsTheBadOne() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            var lines = (0..<5_000).map { _ in Self.detection(at: "2026-11-20T10:00:00Z") }
            lines.insert(Self.detection(#", "video_codec": "h26\#(Self.nul)4""#), at: 2_500)
            let body = lines.joined(separator: "\n") + "\n"
            let headers: HTTPFields = [
                .contentType: "application/x-ndjson", HTTPField.Name("Idempotency-Key")!: "nul-upload",
            ]
            let before = try await IngestAPITests.count(store, type: DetectionRecorded.type)
            var reports: [[String: Any]] = []
            for _ in 0..<2 {
                let response = try await client.execute(
                    uri: "/api/detections/batch", method: .post, headers: headers, body: ByteBuffer(string: body))
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                reports.append(try json(response))
                // Only detections: the batch aggregator appends its own events as batches close.
                #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == before + 5_000)
            }
            #expect(reports[0]["accepted"] as? Int == 5_000)
            #expect(reports[1]["accepted"] as? Int == 0)
            #expect(reports[1]["already_stored"] as? Int == 5_000)
            for report in reports {
                #expect(report["rejected"] as? Int == 1)
                let errors = try #require(report["errors"] as? [[String: Any]])
                #expect(errors.count == 1)
                #expect(errors.first?["line"] as? Int == 2_501)
                let issue = try #require((errors.first?["detail"] as? [[String: Any]])?.first)
                #expect((issue["loc"] as? [Any])?.map { "\($0)" } == ["line", "2501", "video_codec"])
                #expect(issue["type"] as? String == "value_error")
            }
        }
    }
}
