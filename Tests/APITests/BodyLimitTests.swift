import API
import AsyncHTTPClient
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import PostgresNIO
import Synchronization
import Synthetic
import Testing
import VigilTesting

/// Request bodies: 413 from `Content-Length` before reading, 413 while collecting a body that
/// has none, NDJSON lines over their limit reported, and an NDJSON upload of any size read in
/// bounded memory.
@Suite(.serialized) struct BodyLimitTests {
    static func eventCount(_ store: EventStore) async throws -> Int { try await store.changeCount() }

    /// The whole server on a real socket (port chosen by the system).
    static func withLiveApp(
        _ body: @Sendable (EventStore, any TestClientProtocol, Int) async throws -> Void
    ) async throws {
        try await withScratchDatabase { store, scratch in
            try await testApplication(testConfiguration(scratch, live: true), .live) { client in
                try await body(store, client, try #require(client.port))
            }
        }
    }

    /// Sends `body` over a real socket with AsyncHTTPClient; returns the status and the JSON answer.
    /// (Not HummingbirdTesting's live client: its 15 s deadline is too short for a command that
    /// waits for its read model on a loaded 2-core machine.)
    ///
    /// Each request on a connection of its own (`Connection: close`): on a machine starved enough
    /// that two requests are 30 s apart, a kept-alive connection could be reused just as the
    /// server closes it for idleness (`httpIdleTimeout`), and the request fails with "I/O on
    /// closed channel" — HTTP/1.1's own race, seen here twice, reproduced with a short idle
    /// timeout (docs/RELIABILITY.md).
    static func send(
        _ method: HTTPMethod, port: Int, _ path: String, contentType: String, headers: [(String, String)] = [],
        body: HTTPClientRequest.Body
    ) async throws -> (UInt, [String: Any]) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = body
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        let answer = try await response.body.collect(upTo: 1 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.readableBytesView))) as? [String: Any]
        return (response.status.code, object ?? [:])
    }

    static func register(_ id: String, port: Int) async throws {
        let (status, answer) = try await send(
            .POST, port: port, "/api/cameras", contentType: "application/json",
            body: .bytes(ByteBuffer(string: #"{"name": "\#(id)", "folder_path": "/export/\#(id)"}"#)))
        #expect(status == 201, "\(answer)")
    }

    /// Sends `head` and `body` on a connection of its own and parses what the server answers
    /// before it closes: the status code and the JSON body.
    ///
    /// A raw exchange, not AsyncHTTPClient: an early answer (a `413` while the client is still
    /// uploading) races with the client's own body writes there. In full API runs on a starved
    /// machine AHC failed the request with "I/O on closed channel" although the server had
    /// answered (docs/RELIABILITY.md, 11). What these tests check is the server's answer.
    static func exchange(port: Int, head: String, body: ByteBuffer = ByteBuffer()) async throws -> (Int, [String: Any])
    {
        var request = ByteBuffer(string: head)
        request.writeImmutableBuffer(body)
        let answer = try await MalformedRequestTests.raw(Array(request.readableBytesView), port: port)
        let status = answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        let json = answer.range(of: "\r\n\r\n").map { String(answer[$0.upperBound...]) } ?? ""
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
        return (status, object ?? ["raw answer": answer.prefix(300)])
    }

    @Test func oversizedBodiesAre413AndWriteNothing() async throws {
        try await Self.withLiveApp { store, client, port in
            try await Self.register("porch", port: port)
            let before = try await Self.eventCount(store)

            // Over the limit by one byte, with Content-Length: refused before the body is read,
            // so the answer comes though only the head and a few bytes of the body were sent.
            for (method, path, limit) in [
                ("POST", "/api/cameras", 1 << 20), ("POST", "/api/detections", 1 << 20),
                ("POST", "/api/detections/batch", 64 << 20), ("PATCH", "/api/events/1", 1 << 20),
            ] {
                let (status, answer) = try await Self.exchange(
                    port: port,
                    head: "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(limit + 1)\r\nConnection: close\r\n\r\n",
                    body: ByteBuffer(string: #"{"name": "#))
                #expect(status == 413, "\(path): \(answer)")
                #expect(
                    answer["detail"] as? String == "Request body too large: the limit for this route is \(limit) bytes",
                    "\(path): \(answer)")
            }

            // Sent without a length (chunked), larger than the limit: refused while collected.
            var chunked = ByteBuffer()
            let pad = String(repeating: "a", count: 64 << 10)
            for part in [#"{"name": "x", "folder_path": "/x", "pad": ""#] + Array(repeating: pad, count: 19) + [#""}"#]
            {
                chunked.writeString(String(part.utf8.count, radix: 16) + "\r\n" + part + "\r\n")
            }
            chunked.writeString("0\r\n\r\n")
            let (status, answer) = try await Self.exchange(
                port: port,
                head: "POST /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                body: chunked)
            #expect(status == 413, "\(answer)")
            #expect((answer["detail"] as? String)?.hasPrefix("Request body too large") == true, "\(answer)")

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
    /// 384 MiB streamed (chunked) over a real socket: one giant line between two good ones. The
    /// server runs in this process and keeps neither the body nor the line. (Other suites run
    /// meanwhile, hence the margin; without the line limit it grew by about twice the upload.)
    @Test func aHugeNDJSONUploadIsReadInBoundedMemory() async throws {
        try await Self.withLiveApp { store, client, port in
            try await Self.register("porch", port: port)
            let good = IngestAPITests.detection(at: "2026-11-20T10:00:00Z")
            let baseline = Self.residentBytes()
            let peak = PeakMeter()
            let sampler = Task {
                while !Task.isCancelled {
                    peak.record(Self.residentBytes())
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let body = GeneratedBody(
                prefix: good + "\n", filler: UInt8(ascii: "x"), count: 384 << 20, suffix: "\n" + good + "\n")
            let (status, report) = try await Self.send(
                .POST, port: port, "/api/detections/batch", contentType: "application/x-ndjson",
                body: .stream(body, length: .unknown))
            sampler.cancel()
            #expect(status == 200, "\(report)")
            #expect(report["accepted"] as? Int == 2, "\(report)")
            #expect(report["rejected"] as? Int == 1, "\(report)")
            let growth = peak.value - baseline
            #expect(growth < 160 << 20, "resident memory grew by \(growth >> 20) MiB during a 384 MiB upload")
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == 2)
        }
    }
}

/// A body made on the fly, 64 KiB at a time: `prefix`, `count` copies of `filler`, `suffix`.
struct GeneratedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let prefix: String
    let filler: UInt8
    let count: Int
    let suffix: String

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: GeneratedBody
        var sentPrefix = false
        var remaining: Int
        var sentSuffix = false

        mutating func next() async throws -> ByteBuffer? {
            if !sentPrefix {
                sentPrefix = true
                if !body.prefix.isEmpty { return ByteBuffer(string: body.prefix) }
            }
            if remaining > 0 {
                let size = Swift.min(remaining, 64 << 10)
                remaining -= size
                return ByteBuffer(repeating: body.filler, count: size)
            }
            if !sentSuffix {
                sentSuffix = true
                if !body.suffix.isEmpty { return ByteBuffer(string: body.suffix) }
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self, remaining: count) }
}

/// The largest value recorded.
final class PeakMeter: Sendable {
    private let peak = Mutex(0)
    func record(_ value: Int) { peak.withLock { $0 = max($0, value) } }
    var value: Int { peak.withLock { $0 } }
}
