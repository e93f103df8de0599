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

/// The bad requests of ``BadInputTests``, and the helpers that write them.
extension BadInputTests {
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
}
