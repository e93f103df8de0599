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
    /// One bad request and the answer it must get.
    struct BadRequest: CustomStringConvertible {
        enum Answer {
            /// A 422 whose `detail` holds an issue at `loc` of `type`.
            case issue(loc: [String], type: String)
            /// A 422 `json_invalid` at `["body", offset]` (or under `prefix`).
            case syntax(prefix: [String])
            /// `{"detail": "…"}` containing this text.
            case detail(String)
        }

        var method: HTTPRequest.Method
        var uri: String
        var body: [UInt8]?
        var contentType: String?
        var status: HTTPResponse.Status
        var answer: Answer

        init(
            _ method: HTTPRequest.Method, _ uri: String, _ body: String?, contentType: String? = nil,
            status: HTTPResponse.Status = .unprocessableContent, _ answer: Answer
        ) {
            self.method = method
            self.uri = uri
            self.body = body.map { Array($0.utf8) }
            self.contentType = contentType
            self.status = status
            self.answer = answer
        }

        init(_ method: HTTPRequest.Method, _ uri: String, bytes: [UInt8], _ answer: Answer) {
            self.init(method, uri, nil, answer)
            body = bytes
        }

        /// The request, raw bytes escaped (a NUL in test output upsets `swift test`).
        var description: String {
            let text = (body ?? []).map { (0x20..<0x7f).contains($0) ? String(UnicodeScalar($0)) : "\\x\($0)" }
            return "\(method) \(uri) \(text.joined())"
        }
    }

    static func detection(_ extra: String = "", at time: String? = nil, camera: String = "porch") -> String {
        IngestAPITests.detection(camera: camera, at: time, extra: extra)
    }

    static func base64(_ json: String) -> String {
        Data(json.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "%2B").replacingOccurrences(of: "/", with: "%2F")
            .replacingOccurrences(of: "=", with: "")
    }

    static let nul = #"\u0000"#

    /// `count` combining marks (U+0300–U+036F, varied), as JSON escapes.
    static func marks(_ count: Int) -> String {
        (0..<count).map { String(format: #"\u%04x"#, 0x300 + ($0 * 37) % 0x70) }.joined()
    }
    static let analytics = [
        "detection-trends", "risk-history", "camera-uptime", "object-distribution", "risk-score-distribution",
        "risk-score-trends",
    ]

    static var corpus: [BadRequest] {
        let twoDaysAhead = Timestamp.format(Date().addingTimeInterval(2 * 86_400))
        var cases: [BadRequest] = [
            // Finding 1: event times PostgreSQL or the plausible window can't take.
            .init(
                .post, "/api/detections", detection(at: "0000-01-01T00:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "greater_than_equal")),
            .init(
                .post, "/api/detections", detection(at: "99999-01-01T00:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(
                .post, "/api/detections", detection(at: "+99999-01-01T00:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(
                .post, "/api/detections", detection(at: "1999-12-31T23:59:59Z"),
                .issue(loc: ["body", "detected_at"], type: "greater_than_equal")),
            .init(
                .post, "/api/detections", detection(at: twoDaysAhead),
                .issue(loc: ["body", "detected_at"], type: "less_than_equal")),
            .init(
                .post, "/api/detections/batch", "[\(detection()), \(detection(at: "0000-01-01T00:00:00Z"))]",
                .issue(loc: ["body", "1", "detected_at"], type: "greater_than_equal")),
            // Finding 5: strict dates and JSON.
            .init(
                .post, "/api/detections", detection(at: "2026-02-30T10:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(
                .post, "/api/detections", detection(at: "2026-11-20T25:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(
                .post, "/api/detections", detection(at: "2026-11-20T10:60:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(
                .post, "/api/detections", detection(at: "2025-02-29T10:00:00Z"),
                .issue(loc: ["body", "detected_at"], type: "datetime_parsing")),
            .init(.post, "/api/detections", String(detection().dropLast()) + ",}", .syntax(prefix: ["body"])),
            .init(.post, "/api/detections/batch", "[\(detection()),]", .syntax(prefix: ["body"])),
            .init(
                .post, "/api/cameras", #"{"name": "Attic", "folder_path": "/export/attic",}"#,
                .syntax(prefix: ["body"])),
            .init(
                .put, "/api/system/severity", #"{"low_max": 20, "medium_max": 45, "high_max": 70,}"#,
                .syntax(prefix: ["body"])),
            .init(
                .post, "/api/detections", detection(#", "camera_id": "porch""#),
                .issue(loc: ["body", "camera_id"], type: "duplicate_key")),
            .init(
                .post, "/api/detections", detection(#", "enrichment_data": {"a": 1, "a": 2}"#),
                .issue(loc: ["body", "enrichment_data", "a"], type: "duplicate_key")),
            .init(
                .post, "/api/detections", detection(#", "duration": 1e400"#),
                .issue(loc: ["body", "duration"], type: "finite_number")),
            .init(
                .post, "/api/detections", detection(), contentType: "text/plain", status: .unsupportedMediaType,
                .detail("Unsupported Content-Type 'text/plain'")),
            .init(
                .post, "/api/detections/batch", "[\(detection())]", contentType: "text/plain",
                status: .unsupportedMediaType, .detail("Unsupported Content-Type")),
            .init(
                .post, "/api/cameras", #"{"name": "Attic", "folder_path": "/export/attic"}"#,
                contentType: "application/x-www-form-urlencoded", status: .unsupportedMediaType,
                .detail("Unsupported Content-Type")),
            // Finding 2: NUL, lone surrogates and invalid UTF-8 in bodies.
            .init(
                .post, "/api/detections", detection(camera: "por\(nul)ch"),
                .issue(loc: ["body", "camera_id"], type: "value_error")),
            .init(
                .post, "/api/detections", detection(#", "thumbnail_path": "/a\#(nul).jpg""#),
                .issue(loc: ["body", "thumbnail_path"], type: "value_error")),
            .init(
                .post, "/api/detections", detection(#", "enrichment_data": {"plate": ["AB\#(nul)1"]}"#),
                .issue(loc: ["body", "enrichment_data", "plate", "0"], type: "value_error")),
            .init(
                .post, "/api/detections", detection(#", "enrichment_data": {"k\#(nul)": 1}"#),
                .issue(loc: ["body", "enrichment_data", "k\u{0}"], type: "value_error")),
            .init(
                .post, "/api/detections", detection(#", "video_codec": "h\ud800""#),
                .issue(loc: ["body", "video_codec"], type: "string_unicode")),
            .init(
                .post, "/api/detections", detection(#", "video_codec": "h\udc00\ud800""#),
                .issue(loc: ["body", "video_codec"], type: "string_unicode")),
            .init(
                .post, "/api/detections",
                bytes: Array(#"{"camera_id": "porch", "file_path": "/a"#.utf8) + [0xff, 0xfe]
                    + Array(#".jpg", "object_type": "car"}"#.utf8),
                .issue(loc: ["body", "file_path"], type: "string_unicode")),
            .init(
                .post, "/api/detections", bytes: Array(#"{"camera_id": "por"#.utf8) + [0] + Array(#"ch"}"#.utf8),
                .syntax(prefix: ["body"])),
            .init(
                .post, "/api/detections/batch", "[\(detection()), \(detection(camera: "a\(nul)"))]",
                .issue(loc: ["body", "1", "camera_id"], type: "value_error")),
            .init(
                .post, "/api/cameras", #"{"name": "At\#(nul)tic", "folder_path": "/export/attic"}"#,
                .issue(loc: ["body", "name"], type: "value_error")),
            .init(
                .patch, "/api/cameras/porch", #"{"folder_path": "/export/\#(nul)"}"#,
                .issue(loc: ["body", "folder_path"], type: "value_error")),
            .init(
                .patch, "/api/events/1", #"{"notes": "seen\#(nul)"}"#,
                .issue(loc: ["body", "notes"], type: "value_error")),
            .init(
                .post, "/api/events/1/analysis", #"{"risk_score": 50, "summary": "a\#(nul)b"}"#,
                .issue(loc: ["body", "summary"], type: "value_error")),
            .init(
                .post, "/api/events/1/analysis", #"{"risk_score": 50, "summary": "ok", "reasoning": "\#(nul)"}"#,
                .issue(loc: ["body", "reasoning"], type: "value_error")),
            .init(
                .post, "/api/events/1/reanalyse", #"{"reason": "\#(nul)"}"#,
                .issue(loc: ["body", "reason"], type: "value_error")),
            .init(
                .patch, "/api/system/config", #"{"fast_path_object_types": ["person", "c\#(nul)r"]}"#,
                .issue(loc: ["body", "fast_path_object_types", "1"], type: "value_error")),
            // Finding 2: NUL in query parameters and the path.
            .init(.get, "/api/events/search?q=a%00b", nil, .issue(loc: ["query", "q"], type: "value_error")),
            .init(.get, "/api/events?camera_id=%00", nil, .issue(loc: ["query", "camera_id"], type: "value_error")),
            .init(
                .get, "/api/events/export?camera_id=%00", nil, .issue(loc: ["query", "camera_id"], type: "value_error")),
            .init(
                .get, "/api/detections?object_type=car%00", nil,
                .issue(loc: ["query", "object_type"], type: "value_error")),
            .init(.get, "/api/log?types=A,%00", nil, .issue(loc: ["query", "types"], type: "value_error")),
            .init(
                .get, "/api/log?stream_prefix=cam%00", nil,
                .issue(loc: ["query", "stream_prefix"], type: "value_error")),
            .init(.get, "/api/streams/camera-%00", nil, status: .badRequest, .detail("Invalid path")),
            .init(
                .get, "/api/cameras?cursor=" + base64(#"{"id": "porch\#(nul)", "created_at": "2026-11-18T11:06:40Z"}"#),
                nil,
                status: .badRequest, .detail("Invalid cursor: id: Value error, NUL")),
            // Finding 3: out-of-range dates in queries and cursors.
            .init(
                .get, "/api/events?cursor=" + base64(#"{"id": 3, "created_at": "0000-01-01T00:00:00Z"}"#), nil,
                status: .badRequest, .detail("Invalid cursor: 'created_at' is out of range")),
            .init(
                .get, "/api/detections?cursor=" + base64(#"{"id": 3, "created_at": "2026-02-30T00:00:00Z"}"#), nil,
                status: .badRequest, .detail("Invalid cursor: 'created_at' is not an ISO 8601 timestamp")),
            .init(
                .get, "/api/events?start_date=0000-01-01", nil,
                .issue(loc: ["query", "start_date"], type: "greater_than_equal")),
            .init(
                .get, "/api/detections?end_date=99999-01-01", nil,
                .issue(loc: ["query", "end_date"], type: "datetime_from_date_parsing")),
            .init(
                .get, "/api/events/stats?start_date=2026-02-30", nil,
                .issue(loc: ["query", "start_date"], type: "datetime_from_date_parsing")),
            .init(
                .get, "/api/events?end_date=2026-11-20T25:00:00Z", nil,
                .issue(loc: ["query", "end_date"], type: "datetime_from_date_parsing")),
            // Session 47's sweep: lengths count code points, not what a reader sees as one
            // letter (one letter and 300 combining marks was "1 character" of 600 bytes, and
            // at 3,000 marks more than the read models' indexes hold).
            .init(
                .post, "/api/detections", IngestAPITests.detection(camera: "porch", object: "p" + Self.marks(300)),
                .issue(loc: ["body", "object_type"], type: "string_too_long")),
            .init(
                .post, "/api/cameras", #"{"name": "y\#(Self.marks(300))", "folder_path": "/export/y"}"#,
                .issue(loc: ["body", "name"], type: "string_too_long")),
            .init(
                .post, "/api/cameras", #"{"name": "Attic", "folder_path": "/g\#(Self.marks(600))"}"#,
                .issue(loc: ["body", "folder_path"], type: "string_too_long")),
            .init(
                .post, "/api/alerts/rules", #"{"name": "x", "dedup_key_template": "k\#(Self.marks(300))"}"#,
                .issue(loc: ["body", "dedup_key_template"], type: "string_too_long")),
            .init(
                .post, "/api/logs/frontend",
                #"{"level": "error", "message": "m", "component": "c\#(Self.marks(200))"}"#,
                .issue(loc: ["body", "component"], type: "string_too_long")),
            // Integers a double can't hold: stored with other digits, and a keyed retry
            // differing in them read as the same request.
            .init(
                .post, "/api/detections", detection(#", "enrichment_data": {"plate_id": 9007199254740993}"#),
                .issue(loc: ["body", "enrichment_data", "plate_id"], type: "int_too_large")),
            .init(
                .post, "/api/detections", detection(#", "enrichment_data": {"n": [-99999999999999999999]}"#),
                .issue(loc: ["body", "enrichment_data", "n", "0"], type: "int_too_large")),
            // 200 characters whose lower case is 400: longer than a camera id may be.
            .init(
                .post, "/api/cameras",
                #"{"name": "\#(String(repeating: #"\u0130"#, count: 200))", "folder_path": "/export/i"}"#,
                .issue(loc: ["body", "name"], type: "value_error")),
        ]
        for route in analytics {
            cases.append(
                .init(
                    .get, "/api/analytics/\(route)?start_date=0000-01-01&end_date=2026-11-01", nil,
                    .issue(loc: ["query", "start_date"], type: "date_parsing")))
            cases.append(
                .init(
                    .get, "/api/analytics/\(route)?start_date=2026-11-01&end_date=99999-01-01", nil,
                    .issue(loc: ["query", "end_date"], type: "date_parsing")))
            cases.append(
                .init(
                    .get, "/api/analytics/\(route)?start_date=2026-02-30&end_date=2026-03-05", nil,
                    .issue(loc: ["query", "start_date"], type: "date_parsing")))
        }
        // Issue 21: a field no route reads is refused, never silently dropped.
        let extra = { (method: HTTPRequest.Method, uri: String, body: String, loc: [String]) in
            cases.append(.init(method, uri, body, .issue(loc: loc, type: "extra_forbidden")))
        }
        extra(.patch, "/api/events/1", #"{"flagged": true}"#, ["body", "flagged"])
        extra(.patch, "/api/events/1", #"{"reviewed": true, "flagged": true}"#, ["body", "flagged"])
        extra(
            .post, "/api/cameras", #"{"name": "Attic", "folder_path": "/export/attic", "colour": "red"}"#,
            ["body", "colour"])
        extra(.patch, "/api/cameras/porch", #"{"nme": "Porch two"}"#, ["body", "nme"])
        extra(.post, "/api/detections", detection(#", "thumbnail_pth": "/t.jpg""#), ["body", "thumbnail_pth"])
        extra(.post, "/api/detections/batch", "[\(detection()), \(detection(#", "x": 1"#))]", ["body", "1", "x"])
        extra(
            .post, "/api/events/1/analysis", #"{"risk_score": 50, "summary": "ok", "confidence": 1}"#,
            ["body", "confidence"])
        extra(.post, "/api/events/1/reanalyse", #"{"why": "x"}"#, ["body", "why"])
        extra(
            .put, "/api/system/severity", #"{"low_max": 30, "medium_max": 60, "high_max": 85, "critical_max": 100}"#,
            ["body", "critical_max"])
        extra(.patch, "/api/system/config", #"{"retention": 3}"#, ["body", "retention"])
        // Issue 21: control characters in single-line text (names, ids, paths, types, models).
        let control = { (method: HTTPRequest.Method, uri: String, body: String, loc: [String]) in
            cases.append(.init(method, uri, body, .issue(loc: loc, type: "value_error")))
        }
        control(.post, "/api/cameras", #"{"name": "At\u0001tic", "folder_path": "/export/attic"}"#, ["body", "name"])
        control(.patch, "/api/cameras/porch", #"{"name": "Porch\nTwo"}"#, ["body", "name"])
        control(.patch, "/api/cameras/porch", #"{"folder_path": "/export/\tporch"}"#, ["body", "folder_path"])
        control(.post, "/api/detections", detection(#", "video_codec": "h\u007f264""#), ["body", "video_codec"])
        control(.post, "/api/detections", detection(camera: #"por\rch"#), ["body", "camera_id"])
        control(
            .post, "/api/events/1/analysis", #"{"risk_score": 50, "summary": "ok", "model": "m\r"}"#, ["body", "model"])
        control(
            .patch, "/api/system/config", #"{"fast_path_object_types": ["per\u001bson"]}"#,
            ["body", "fast_path_object_types", "0"])
        return cases
    }

    static func eventCount(_ store: EventStore) async throws -> Int { try await store.changeCount() }

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

    // MARK: The strict reader on its own

    @Test(arguments: [
        #"{"a": [1, 2,]}"#, #"{"a": 1,}"#, "[1 2]", #"{"a": 01}"#, #"{"a": .5}"#, #"{"a": "\x"}"#,
        #"{"a": "unterminated}"#, #"{"a": NaN}"#, "{'a': 1}", #"{"a": 1} // comment"#, #"{"a": 1} {"b": 2}"#, "",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func syntaxErrorsAreRefused(_ text: String) {
        #expect(throws: StrictJSON.Failure.self) { try StrictJSON.parse(Array(text.utf8)) }
        do {
            _ = try StrictJSON.parse(Array(text.utf8))
        } catch {
            #expect(error.type == "json_invalid", "\(text)")
            #expect(error.location.count == 1 && Int(error.location[0]) != nil, "\(text)")
        }
    }

    @Test func wellFormedJSONReadsAsFoundationReadsIt() throws {
        let text = #"""
            {"s": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00", "n": [0, -1, 2.5, 1e3, -0.25E-2, 9007199254740991, -9007199254740991, 1e20],
             "t": true,
             "f": false, "z": null, "o": {"nested": [[], {}]}, "deep": [[[["x"]]]]}
            """#
        let strict = try StrictJSON.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(strict == foundation)
        let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: Never.self) { try StrictJSON.parse(Array(deep.utf8)) }
    }
}
