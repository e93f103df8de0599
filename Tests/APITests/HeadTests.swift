import API
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Testing
import VigilTesting

/// `HEAD` answers like `GET`, without a body.
@Suite struct HeadTests {
    @Test func headIsGetWithoutTheBody() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "porch")
            // Routes whose answer doesn't change between the two requests.
            for uri in ["/api/cameras/porch", "/health", "/api/system/config", "/api/cameras/porch/nope"] {
                let get = try await client.execute(uri: uri, method: .get)
                let head = try await client.execute(uri: uri, method: .head)
                #expect(head.status == get.status, "\(uri)")
                #expect(head.body.readableBytes == 0, "\(uri)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(uri)")
                #expect(head.headers[.contentLength] == String(get.body.readableBytes), "\(uri)")
            }
            let missing = try await client.execute(uri: "/api/cameras/nope", method: .head)
            #expect(missing.status == .notFound)
            #expect(missing.body.readableBytes == 0)
        }
    }
}

/// A known path asked with a method it doesn't serve: `405` with `Allow`, not `404`.
@Suite struct MethodNotAllowedTests {
    @Test func knownPathsNameTheirMethods() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "porch")
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.put, "/api/events", "GET, HEAD"),
                (.post, "/health", "GET, HEAD"),
                (.delete, "/api/system/config", "GET, HEAD, PATCH"),
                (.get, "/api/detections/batch", "POST"),
                // DELETE is a route here and answers 204: the probe must not run it.
                (.post, "/api/cameras/porch", "GET, HEAD, PATCH, DELETE"),
                (.put, "/api/cameras/porch%20two", "GET, HEAD, PATCH, DELETE"),
            ]
            for (method, uri, allow) in cases {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(response.headers[.allow] == allow, "\(method) \(uri)")
                #expect(String(buffer: response.body) == #"{"detail":"Method Not Allowed"}"#, "\(method) \(uri)")
            }
            // The probes ran no handler: the camera is still there.
            #expect(try await client.send(.get, "/api/cameras/porch").status == .ok)
            // A method the server knows nothing of, on a known path.
            let trace = try await client.execute(uri: "/health", method: .trace)
            #expect(trace.status == .methodNotAllowed)
            #expect(trace.headers[.allow] == "GET, HEAD")
            // HEAD on a route without GET: 405, no body.
            let head = try await client.execute(uri: "/api/detections/batch", method: .head)
            #expect(head.status == .methodNotAllowed)
            #expect(head.headers[.allow] == "POST")
            #expect(head.body.readableBytes == 0)
            // Unknown paths are still 404, and a served method is untouched.
            for uri in ["/api/nope", "/api/cameras/porch/nope/deeper"] {
                let missing = try await client.execute(uri: uri, method: .get)
                #expect(missing.status == .notFound, "\(uri)")
                #expect(missing.headers[.allow] == nil, "\(uri)")
                #expect(String(buffer: missing.body) == #"{"detail":"Not Found"}"#, "\(uri)")
            }
            #expect(try await client.execute(uri: "/api/cameras/nope", method: .get).status == .notFound)
        }
    }
}

/// Requests NIO's HTTP parser can't read get the seed's error format, not an empty 400.
@Suite struct MalformedRequestTests {
    /// Sends `bytes` on a new connection and returns everything the server answers until it
    /// closes the connection.
    static func raw(_ bytes: [UInt8], port: Int) async throws -> String {
        let channel = try await rawConnection(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: bytes))
            var answer = ByteBuffer()
            for try await var chunk in inbound { answer.writeBuffer(&chunk) }
            return String(buffer: answer)
        }
    }

    @Test("a connection that sends half a request head, or nothing, is closed after the idle timeout")
    func stalledHeadsAreClosed() async throws {
        try await withScratchDatabase { _, scratch in
            var configuration = testConfiguration(scratch, live: true)
            configuration.httpIdleTimeout = .seconds(1)
            try await testApplication(configuration, .live) { client in
                let port = try #require(client.port)
                for bytes in [Array("GET /api/ev".utf8), []] {
                    let started = ContinuousClock.now
                    // Closed either way: with a FIN, or, when the close comes before the server
                    // has read the half head (a starved machine), with a reset.
                    var answer = ""
                    do {
                        answer = try await Self.raw(bytes, port: port)
                    } catch let error as IOError where error.errnoCode == ECONNRESET {}
                    #expect(answer.isEmpty, "\(answer.prefix(200))")
                    #expect(
                        ContinuousClock.now - started < .seconds(30), "closed after \(ContinuousClock.now - started)")
                }
            }
        }
    }

    /// HTTP/1.0 without keep-alive, and `Connection: Close` in any case, end with the answer
    /// (they once waited for the 30-s idle timeout); keep-alive requests are still kept.
    @Test func connectionsCloseWhenTheRequestSaysSo() async throws {
        try await BodyLimitTests.withLiveApp { _, _, port in
            for request in [
                "GET /health HTTP/1.0\r\n\r\n", "GET /health HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
            ] {
                let started = ContinuousClock.now
                let answer = try await Self.raw(Array(request.utf8), port: port)
                #expect(answer.hasPrefix("HTTP/1.1 200"), "\(request.debugDescription): \(answer.prefix(200))")
                #expect(answer.components(separatedBy: "HTTP/1.1 200").count == 2, "one answer, then the close")
                #expect(ContinuousClock.now - started < .seconds(10), "closed after \(ContinuousClock.now - started)")
            }
            // HTTP/1.0 asking for keep-alive gets both answers on one connection.
            let channel = try await rawConnection(port: port)
            let answers = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(
                    ByteBuffer(
                        string: "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                            + "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
                var answer = ""
                for try await chunk in inbound {
                    answer += String(buffer: chunk)
                    if answer.components(separatedBy: "HTTP/1.1 200").count == 3 { break }
                }
                return answer.components(separatedBy: "HTTP/1.1 200").count - 1
            }
            #expect(answers == 2)
        }
    }

    @Test func unreadableRequestsGet400WithADetail() async throws {
        try await BodyLimitTests.withLiveApp { _, _, port in
            let longQuery =
                "GET /api/events?q=" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\nHost: x\r\n\r\n"
            let rawBytes: [UInt8] =
                Array("GET /api/ev".utf8) + [0x01, 0xff, 0x00] + Array("ents HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            let garbage: [UInt8] =
                [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03] + Array(repeating: 0, count: 64)
            for (name, bytes) in [
                ("100 kB query", Array(longQuery.utf8)), ("raw bytes", rawBytes), ("TLS hello", garbage),
            ] {
                let answer = try await Self.raw(bytes, port: port)
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(name): \(answer.prefix(200))")
                let body = answer.components(separatedBy: "\r\n\r\n").dropFirst().joined()
                let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                #expect((object?["detail"] as? String)?.isEmpty == false, "\(name): \(answer.prefix(300))")
            }
        }
    }
}
