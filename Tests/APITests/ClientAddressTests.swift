import API
import AsyncHTTPClient
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Projections
import Synthetic
import Testing

/// Issue 12, finding 8: the client address in the events' metadata comes from the socket, and
/// from `X-Forwarded-For` only when a trusted proxy sent it.
@Suite struct ClientAddressTests {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The whole server listening on a real socket (an ephemeral port on 127.0.0.1).
    static func withLiveApp(
        trustedProxies: String = "", _ body: @Sendable (EventStore, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withScratchDatabase { store, database in
            var configuration = testConfiguration(database, live: true)
            configuration.trustedProxies = try TrustedProxies.parse(trustedProxies).get()
            try await testApplication(configuration, .live) { client in try await body(store, client) }
        }
    }

    /// Registers camera `name`, with `X-Forwarded-For` if given; the `client_address` its event recorded.
    static func register(
        _ name: String, forwardedFor: String? = nil, store: EventStore, client: any TestClientProtocol
    ) async throws -> String? {
        let body = #"{"name": "\#(name)", "folder_path": "/cams/\#(name)"}"#
        if let port = client.port {
            // A real socket, through AsyncHTTPClient (see `BodyLimitTests.send`).
            let (status, answer) = try await BodyLimitTests.send(
                .POST, port: port, "/api/cameras", contentType: "application/json",
                headers: forwardedFor.map { [("X-Forwarded-For", $0)] } ?? [], body: .bytes(ByteBuffer(string: body)))
            #expect(status == 201, "\(answer)")
        } else {
            var headers: HTTPFields = [.contentType: "application/json"]
            if let forwardedFor { headers[Self.forwardedFor] = forwardedFor }
            let response = try await client.execute(
                uri: "/api/cameras", method: .post, headers: headers, body: ByteBuffer(string: body))
            #expect(response.status == .created)
        }
        let event = try #require(try await store.readStream("camera-\(name)")?.events.first)
        let metadata = try #require(
            try JSONSerialization.jsonObject(with: Data(event.metadata.utf8)) as? [String: Any])
        return metadata["client_address"] as? String
    }

    @Test func theSocketsAddressIsRecordedAndAnUntrustedForwardedForIgnored() async throws {
        try await Self.withLiveApp { store, client in
            let plain = try await Self.register("plain", store: store, client: client)
            #expect(plain == "127.0.0.1")
            let spoofed = try await Self.register("spoofed", forwardedFor: "203.0.113.7", store: store, client: client)
            #expect(spoofed == "127.0.0.1")
        }
    }

    @Test func aTrustedProxysForwardedForNamesTheClient() async throws {
        try await Self.withLiveApp(trustedProxies: "10.0.0.0/8, 127.0.0.1") { store, client in
            let proxied = try await Self.register("proxied", forwardedFor: "203.0.113.7", store: store, client: client)
            #expect(proxied == "203.0.113.7")
            // What the client wrote to the left of the nearest untrusted hop is not believed.
            let chained = try await Self.register(
                "chained", forwardedFor: "198.51.100.1, 203.0.113.7, 10.1.2.3", store: store, client: client)
            #expect(chained == "203.0.113.7")
            let direct = try await Self.register("direct", store: store, client: client)
            #expect(direct == "127.0.0.1")
        }
    }

    @Test func withoutASocketNoAddressIsRecorded() async throws {
        try await withApp { store, client in
            let recorded = try await Self.register(
                "nosocket", forwardedFor: "203.0.113.7", store: store, client: client)
            #expect(recorded == nil)
        }
    }

    @Test func trustedProxyLists() throws {
        let proxies = try TrustedProxies.parse(" 10.0.0.0/8 , 192.168.1.1, fd00::/8").get()
        #expect(proxies.contains("10.200.3.4") && proxies.contains("192.168.1.1") && proxies.contains("fd12::1"))
        #expect(!proxies.contains("11.0.0.1") && !proxies.contains("192.168.1.2") && !proxies.contains("::1"))
        #expect(proxies.contains("::ffff:10.1.1.1"))
        #expect(TrustedProxies.none.client(peer: "127.0.0.1", forwardedFor: ["1.2.3.4"]) == "127.0.0.1")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["1.2.3.4, 10.0.0.2"]) == "1.2.3.4")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["garbage"]) == "10.0.0.1")
        for bad in ["10.0.0.0/33", "example.com", "1.2.3", "::1/129"] {
            #expect(throws: TrustedProxies.InvalidEntry.self) { try TrustedProxies.parse(bad).get() }
        }
    }
}
