import AsyncHTTPClient
import Domain
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Testing
import VigilTesting

@testable import API

/// `GET /api/metrics` through the real router: the exposition parses, and it counts what the
/// test did.
@Suite struct MetricsTests {
    static let root = AuthTests.root

    /// The samples of a Prometheus text exposition, by series (`name{labels}`); every line is
    /// checked to be a comment or a well-formed sample.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        let series = #/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?$/#
        for line in text.split(separator: "\n") where !line.isEmpty {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
            guard let space = line.lastIndex(of: " ") else {
                Issue.record("not a sample: \(line)")
                continue
            }
            let name = String(line[..<space])
            let value = line[line.index(after: space)...]
            guard (try? series.wholeMatch(in: name)) != nil,
                let number = Double(value) ?? (value == "+Inf" ? .infinity : nil)
            else {
                Issue.record("not a sample: \(line)")
                continue
            }
            samples[name] = number
        }
        return samples
    }

    @Test("The exposition parses and counts requests by route template and status, appends, lag")
    func exposition() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { _, client in
            let camera = try await client.call(
                .post, "/api/cameras", key: Self.root, json: #"{"name": "porch", "folder_path": "/export/porch"}"#)
            #expect(camera.status == .created)
            for _ in 0..<2 { #expect(try await client.call(.get, "/api/events", key: Self.root).status == .ok) }
            #expect(try await client.call(.get, "/api/events/424242", key: Self.root).status == .notFound)
            #expect(try await client.call(.get, "/no/such/route", key: Self.root).status == .notFound)
            let detection = try await client.call(
                .post, "/api/detections", key: Self.root, json: IngestAPITests.detection(object: "car"))
            #expect(detection.status == .created)

            let response = try await client.call(.get, "/api/metrics", key: Self.root)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let samples = Self.samples(String(buffer: response.body))
            #expect(samples[#"http_requests_total{method="GET",endpoint="/api/events",status="200"}"#] == 2)
            #expect(samples[#"http_requests_total{method="GET",endpoint="/api/events/{event_id}",status="404"}"#] == 1)
            #expect(samples[#"http_requests_total{method="GET",endpoint="NotFound",status="404"}"#] == 1)
            #expect(samples[#"http_requests_total{method="POST",endpoint="/api/detections",status="201"}"#] == 1)
            #expect(samples.keys.allSatisfy { !$0.contains("424242") && !$0.contains("/no/such") })
            #expect(
                samples[#"http_request_duration_seconds_count{method="GET",endpoint="/api/events"}"#] == 2)
            #expect(
                samples[#"http_request_duration_seconds_bucket{method="GET",endpoint="/api/events",le="+Inf"}"#] == 2)
            #expect((samples["vigil_append_transactions_total"] ?? 0) >= 1)
            #expect((samples["vigil_appended_events_total"] ?? 0) >= 1)
            #expect((samples["vigil_append_batch_requests_count"] ?? 0) >= 1)
            #expect(samples["vigil_database_up"] == 1)
            for name in ["cameras", "detections", "security_events", "analytics", "audit"] {
                #expect(samples[#"vigil_projection_lag_events{projection="\#(name)"}"#] != nil, "\(name)")
            }
            #expect(samples[#"vigil_websocket_clients{endpoint="/ws/log"}"#] == 0)

            // Any key that reads may scrape; none, no.
            let viewer = try await client.issueKey("vera", role: .viewer, adminKey: Self.root)
            #expect(try await client.call(.get, "/api/metrics", key: viewer).status == .ok)
            #expect(try await client.call(.get, "/api/metrics", key: nil).status == .unauthorized)
        }
    }

    /// The `/ws/events` client gauge of a live server, scraped over HTTP.
    static func eventsClients(port: Int) async throws -> Double? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/metrics")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 22))
        return samples(text)[#"vigil_websocket_clients{endpoint="/ws/events"}"#]
    }

    @Test("An open /ws/events socket is counted while it is open")
    func webSocketClients() async throws {
        try await LogSocketTests.withLiveApp { _, _, port in
            #expect(try await Self.eventsClients(port: port) == 0)
            try await EventsSocketTests.session(port: port) { _, _ in
                try await waitUntil("the socket is counted") { try await Self.eventsClients(port: port) == 1 }
            }
            try await waitUntil("the closed socket is no longer counted") {
                try await Self.eventsClients(port: port) == 0
            }
        }
    }
}
