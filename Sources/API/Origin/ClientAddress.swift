import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The application's request context: Hummingbird's basic one plus the socket's peer address.
/// Under `app.test(.router)` there is no socket, so the peer is nil and no address is recorded.
public struct VigilRequestContext: RequestContext, RemoteAddressRequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Where a WebSocket route (`/ws/…`) leaves its handler for the upgrade.
    public let webSocket = WebSocketHandlerReference<VigilRequestContext>()
    /// A probe of ``MethodNotAllowedResponder``: answered by ``MethodProbeMiddleware`` alone.
    var isMethodProbe = false

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`VIGIL_TRUSTED_PROXIES`: addresses and
/// CIDR blocks, IPv4 or IPv6, comma-separated; none by default).
public struct TrustedProxies: Sendable, Hashable {
    struct Block: Sendable, Hashable {
        var network: [UInt8]
        var prefixLength: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == network.count else { return false }
            var remaining = prefixLength
            for (byte, networkByte) in zip(address, network) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if byte & mask != networkByte & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    var blocks: [Block]

    public static let none = TrustedProxies(blocks: [])

    init(blocks: [Block]) { self.blocks = blocks }

    /// Parses `"127.0.0.1, 10.0.0.0/8, ::1"`; a failure names the first entry that is not an address or block.
    public static func parse(_ list: String) -> Result<TrustedProxies, InvalidEntry> {
        var blocks: [Block] = []
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            guard let network = Self.bytes(parts[0]) else { return .failure(InvalidEntry(entry: entry)) }
            var length = network.count * 8
            if parts.count == 2 {
                guard let given = Int(parts[1]), (0...length).contains(given) else {
                    return .failure(InvalidEntry(entry: entry))
                }
                length = given
            }
            blocks.append(Block(network: network, prefixLength: length))
        }
        return .success(TrustedProxies(blocks: blocks))
    }

    public struct InvalidEntry: Error, CustomStringConvertible {
        public var entry: String
        public var description: String { "VIGIL_TRUSTED_PROXIES: '\(entry)' is not an IP address or CIDR block" }
    }

    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address) else { return false }
        return blocks.contains { $0.contains(bytes) }
    }

    /// The client of a request that came from `peer` with `forwardedFor` (the header's values):
    /// the peer itself unless it is a trusted proxy; then the nearest address in the header
    /// that is not a trusted proxy (the ones to its left could have been written by the client).
    /// The client of `request` that came from `peer` (its `X-Forwarded-For` believed as above).
    func client(of request: Request, peer: SocketAddress?) -> String? {
        client(peer: peer?.ipAddress, forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!])
    }

    public func client(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer, contains(peer) else { return peer }
        let chain = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        var client = peer
        for hop in chain.reversed() {
            guard Self.bytes(hop) != nil else { break }  // garbage: stop at the last good hop
            client = hop
            if !contains(hop) { break }
        }
        return client
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address; an IPv4-mapped IPv6 address as IPv4.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = [UInt8](repeating: 0, count: 4)
        if inet_pton(AF_INET, text, &v4) == 1 { return v4 }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, text, &bytes) == 1 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }
}

/// Who sent the request being handled, as ``ClientAddressMiddleware`` resolved it. A task local
/// rather than a field of every command path: the events' metadata is built deep in helpers
/// that only see the request, and a value scoped to the request's task can't leak to another.
enum RequestOrigin {
    @TaskLocal static var clientAddress: String?
}

/// Resolves the client's address from the socket and, only from trusted proxies, from
/// `X-Forwarded-For`, for the metadata of the events the request appends.
struct ClientAddressMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let trustedProxies: TrustedProxies

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        let client = trustedProxies.client(of: request, peer: context.remoteAddress)
        return try await RequestOrigin.$clientAddress.withValue(client) { try await next(request, context) }
    }
}
