import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// Request bodies: 413 from `Content-Length` before reading, 413 while collecting a body that
/// has none, NDJSON lines over their limit reported, and an NDJSON upload of any size read in
/// bounded memory.
@Suite struct BodyLimitTests {
    static func eventCount(_ store: EventStore) async throws -> Int64 {
        let rows = try await store.client.guardedQuery("SELECT count(*) FROM events", logger: store.logger)
        return try await rows.decode(Int64.self).first { _ in true } ?? -1
    }

    /// The whole server on a real socket (port chosen by the system), for curl.
    static func withLiveApp(
        _ body: @Sendable (EventStore, any TestClientProtocol, Int) async throws -> Void
    ) async throws {
        try await withScratchDatabase { store, scratch in
            var database = scratch
            database.maximumConnections = 24
            let app = buildApplication(
                ServerConfiguration(host: "127.0.0.1", port: 0, postgres: database), logger: testLogger)
            try await app.test(.live) { client in try await body(store, client, try #require(client.port)) }
        }
    }

    /// Runs a shell pipeline; returns its standard output. Waits without blocking a thread of
    /// the concurrency pool (the server under test runs on those threads, in this process).
    static func shell(_ script: String) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "{ \(script); } > '\(output.path)'"]
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        #expect(process.terminationStatus == 0, "\(script.prefix(200))")
        return (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    }

    @Test func oversizedBodiesAre413AndWriteNothing() async throws {
        try await Self.withLiveApp { store, client, port in
            try await IngestAPITests.register(client, "porch")
            let before = try await Self.eventCount(store)

            // Over the limit by one byte, with Content-Length: refused before the body is read.
            for (method, path, limit) in [
                ("POST", "/api/cameras", 1 << 20), ("POST", "/api/detections", 1 << 20),
                ("POST", "/api/detections/batch", 64 << 20), ("PATCH", "/api/events/1", 1 << 20),
            ] {
                let answer = try await Self.shell(
                    """
                    head -c \(limit + 1) /dev/zero | tr '\\0' ' ' \
                    | curl -sS -X \(method) -H 'Content-Type: application/json' --data-binary @- \
                      -w '\\n%{http_code}' http://127.0.0.1:\(port)\(path)
                    """)
                let lines = answer.split(separator: "\n")
                #expect(lines.last == "413", "\(path): \(answer.prefix(300))")
                let detail = try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any]
                #expect(
                    detail?["detail"] as? String == "Request body too large: the limit for this route is \(limit) bytes",
                    "\(path): \(answer.prefix(300))")
            }

            // Sent without a length (chunked), larger than the limit: refused while collected.
            let chunked = try await Self.shell(
                """
                { printf '{"name": "x", "folder_path": "/x", "pad": "'; head -c 1200000 /dev/zero | tr '\\0' a; \
                  printf '"}'; } \
                | curl -sS -X POST -T - -H 'Content-Type: application/json' -w '\\n%{http_code}' \
                  http://127.0.0.1:\(port)/api/cameras
                """)
            let lines = chunked.split(separator: "\n")
            #expect(lines.last == "413", "\(chunked.prefix(300))")
            #expect(lines.first?.contains("Request body too large") == true, "\(chunked.prefix(300))")

            #expect(try await Self.eventCount(store) == before)
        }
    }

    @Test func anNDJSONLineOverItsLimitIsReportedAndTheOthersAreKept() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "porch")
            let long = #"{"camera_id": "porch", "pad": ""# + String(repeating: "a", count: (1 << 20) + 10) + #""}"#
            let body = [
                IngestAPITests.detection(at: "2026-11-20T10:00:00Z"), long,
                IngestAPITests.detection(at: "2026-11-20T10:00:01Z"),
            ].joined(separator: "\n")
            let response = try await client.execute(
                uri: "/api/detections/batch", method: .post, headers: [.contentType: "application/x-ndjson"],
                body: ByteBuffer(string: body))
            #expect(response.status == .ok, "\(String(buffer: response.body).prefix(300))")
            let report = try json(response)
            #expect(report["accepted"] as? Int == 2)
            #expect(report["rejected"] as? Int == 1)
            let errors = try #require(report["errors"] as? [[String: Any]])
            #expect(errors.first?["line"] as? Int == 2)
            let issue = (errors.first?["detail"] as? [[String: Any]])?.first
            #expect(issue?["type"] as? String == "too_long", "\(errors)")
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == 2)
        }
    }

    /// The process's resident memory, from /proc (Linux).
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// 256 MiB streamed over a real socket by curl (chunked, no length): one giant line between
    /// two good ones. The server (in this process) keeps neither the body nor the line.
    @Test func aHugeNDJSONUploadIsReadInBoundedMemory() async throws {
        try await Self.withLiveApp { store, client, port in
            try await IngestAPITests.register(client, "porch")
            let good = IngestAPITests.detection(at: "2026-11-20T10:00:00Z")
            let baseline = Self.residentBytes()
            let peak = PeakMeter()
            let sampler = Task {
                while !Task.isCancelled {
                    peak.record(Self.residentBytes())
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let answer = try await Self.shell(
                """
                { printf '%s\\n' '\(good)'; head -c \(256 << 20) /dev/zero | tr '\\0' x; \
                  printf '\\n%s\\n' '\(good)'; } \
                | curl -sS -X POST -T - -H 'Content-Type: application/x-ndjson' \
                  http://127.0.0.1:\(port)/api/detections/batch
                """)
            sampler.cancel()
            let report = try #require(try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any])
            #expect(report["accepted"] as? Int == 2, "\(report)")
            #expect(report["rejected"] as? Int == 1, "\(report)")
            // The upload was 256 MiB; the server held a small part of it at any time.
            let growth = peak.value - baseline
            #expect(growth < 96 << 20, "resident memory grew by \(growth >> 20) MiB during a 256 MiB upload")
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == 2)
        }
    }
}

/// The largest value recorded.
final class PeakMeter: Sendable {
    private let peak = Mutex(0)
    func record(_ value: Int) { peak.withLock { $0 = max($0, value) } }
    var value: Int { peak.withLock { $0 } }
}
