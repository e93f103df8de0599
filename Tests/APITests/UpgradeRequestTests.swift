import API
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import VigilTesting

/// Every request with an `Upgrade` header gets an answer (``UpgradeGate``): a WebSocket on its
/// routes, a refusal in the seed's format when the handshake is wrong, and elsewhere the
/// header ignored and the request answered as HTTP/1.1. Once `curl --http2` got no answer at
/// all, and a WebSocket upgrade to any other path an empty `400`.
@Suite struct UpgradeRequestTests {
    static let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    static let webSocket = "Upgrade: websocket\r\nConnection: Upgrade\r\n"

    /// The status line, the headers (lower-cased names) and the body of one answer.
    struct Answer {
        let status: String
        let headers: [String: String]
        let body: String

        init(_ raw: String) throws {
            let parts = raw.components(separatedBy: "\r\n\r\n")
            let lines = try #require(parts.first).components(separatedBy: "\r\n")
            status = lines[0]
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                let field = line.split(separator: ":", maxSplits: 1)
                if field.count == 2 {
                    headers[field[0].lowercased()] = field[1].trimmingCharacters(in: .whitespaces)
                }
            }
            self.headers = headers
            body = parts.dropFirst().joined(separator: "\r\n\r\n")
        }
    }

    @Test("upgrades the server doesn't serve are answered as HTTP/1.1; a bad handshake is refused in words")
    func everyUpgradeIsAnswered() async throws {
        try await withScratchDatabase { _, scratch in
            var configuration = testConfiguration(scratch, live: true)
            // `raw` reads until the server closes: a kept connection closes after a second.
            configuration.httpIdleTimeout = .seconds(1)
            try await testApplication(configuration, .live) { client in
                let port = try #require(client.port)
                func ask(_ head: String) async throws -> Answer {
                    try Answer(await MalformedRequestTests.raw(Array("\(head)\r\n".utf8), port: port))
                }
                for (head, status, body) in [
                    ("GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n", "HTTP/1.1 200 OK", #""status":"#),
                    (
                        "GET /health HTTP/1.1\r\nHost: x\r\n\(Self.webSocket)\(Self.key)", "HTTP/1.1 200 OK",
                        #""status":"#
                    ),
                    (
                        "GET /ws/nope HTTP/1.1\r\nHost: x\r\n\(Self.webSocket)\(Self.key)Sec-WebSocket-Version: 13\r\n",
                        "HTTP/1.1 404 Not Found", #"{"detail":"Not Found"}"#
                    ),
                    (
                        "POST /ws/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\(Self.webSocket)\(Self.key)",
                        "HTTP/1.1 405 Method Not Allowed", #"{"detail":"Method Not Allowed"}"#
                    ),
                ] {
                    let answer = try await ask(head)
                    #expect(answer.status == status, "\(head.debugDescription)")
                    #expect(answer.body.contains(body), "\(head.debugDescription): \(answer.body)")
                }

                let oldVersion = try await ask(
                    "GET /ws/events HTTP/1.1\r\nHost: x\r\n\(Self.webSocket)\(Self.key)Sec-WebSocket-Version: 8\r\n")
                #expect(oldVersion.status == "HTTP/1.1 426 Upgrade Required")
                #expect(oldVersion.headers["sec-websocket-version"] == "13")
                #expect(
                    oldVersion.body
                        == #"{"detail":"Unsupported WebSocket version: send Sec-WebSocket-Version: 13"}"#)
                let noKey = try await ask(
                    "GET /ws/log?after=0 HTTP/1.1\r\nHost: x\r\n\(Self.webSocket)Sec-WebSocket-Version: 13\r\n")
                #expect(noKey.status == "HTTP/1.1 400 Bad Request")
                #expect(noKey.body == #"{"detail":"A WebSocket upgrade needs one Sec-WebSocket-Key header"}"#)
                // NIO sends any answer to CONNECT without a body; the status says it, and the
                // connection closes (it got a 404 head and stayed open).
                let connect = try await ask("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n")
                #expect(connect.status == "HTTP/1.1 501 Not Implemented")
                #expect(connect.headers["connection"] == "close")

                // An ignored upgrade keeps the connection: a second request on it is answered.
                let channel = try await rawConnection(port: port)
                let answers = try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(
                        ByteBuffer(
                            string: "GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n\r\n"
                                + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
                    var answer = ""
                    for try await chunk in inbound { answer += String(buffer: chunk) }
                    return answer.components(separatedBy: "HTTP/1.1 200 OK").count - 1
                }
                #expect(answers == 2)
            }
        }
    }

    /// What `curl --http2 http://…` sends. NIO's parser reads nothing more on a connection after
    /// a head that asks to switch (`Connection: Upgrade`), so the answer is its last: closed at
    /// once, not after the 30-s idle timeout.
    @Test func h2cIsAnsweredAsHTTP1() async throws {
        try await BodyLimitTests.withLiveApp { _, _, port in
            let started = ContinuousClock.now
            let h2c = try Answer(
                await MalformedRequestTests.raw(
                    Array(
                        ("GET /api/events?limit=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                            + "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n").utf8), port: port))
            #expect(h2c.status == "HTTP/1.1 200 OK")
            #expect(h2c.body.hasPrefix(#"{"events":["#), "\(h2c.body)")
            #expect(ContinuousClock.now - started < .seconds(10), "closed after \(ContinuousClock.now - started)")
        }
    }

    @Test("a WebSocket route spelled with a trailing slash still upgrades")
    func trailingSlash() async throws {
        try await BodyLimitTests.withLiveApp { _, _, port in
            let opened = try await RawWebSocket.refusal(port: port, path: "/ws/events/", firstFrame: true)
            #expect(opened.status == "HTTP/1.1 101 Switching Protocols")
            #expect(opened.frames == 1 && opened.close == nil, "\(String(describing: opened.close))")
        }
    }
}
