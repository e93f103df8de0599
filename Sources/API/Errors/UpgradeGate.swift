import NIOCore
import NIOHTTP1

/// Decides what a request head's `Upgrade` header means before NIO's upgrader and Hummingbird
/// see it, so that every such request gets an answer:
/// - `Upgrade: websocket` on a WebSocket route (a `GET`) goes on to the upgrader, once its
///   `Sec-WebSocket-Version` is 13 (else `426` naming it, RFC 6455 §4.4) and it carries one
///   `Sec-WebSocket-Key` (else `400`);
/// - any other upgrade (`h2c`, as `curl --http2` asks; `websocket` on a path that is not a
///   WebSocket route) is ignored, as RFC 9110 §7.8 allows: the header goes and the request is
///   answered as HTTP/1.1. Without this, Hummingbird answered the second kind with an empty
///   `400` and the first with nothing at all;
/// - `CONNECT` (a proxy's method) gets `501` and the connection closes (it got a 404 head and
///   the connection stayed open). NIO's encoder sends every answer to `CONNECT` without a body,
///   so the detail is not seen.
///
/// It sits right after the HTTP decoder (``VigilHTTPChannel``) and leaves the pipeline when it
/// lets an upgrade through: after it, frames' bytes pass there.
final class UpgradeGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    /// What the gate does with a request head.
    enum Verdict {
        case pass
        case upgrade
        /// Answered here, with this status, detail and extra headers; the connection closes.
        case refuse(HTTPResponseStatus, String, [(String, String)])
        /// Answered as plain HTTP: the head without `Upgrade`.
        case ignoreUpgrade(HTTPRequestHead)
    }

    /// The paths of the WebSocket routes (`/ws/events`, …).
    let webSocketPaths: Set<String>
    private var refused = false

    init(webSocketPaths: Set<String>) { self.webSocketPaths = Set(webSocketPaths.map(Self.normalized)) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        guard case .head(let head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        switch verdict(head) {
        case .pass:
            context.fireChannelRead(data)
        case .upgrade:
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .refuse(let status, let detail, let headers):
            refused = true
            context.answerAndClose(status, detail: detail, headers: headers)
        case .ignoreUpgrade(let plain):
            context.fireChannelRead(wrapInboundOut(.head(plain)))
        }
    }

    func verdict(_ head: HTTPRequestHead) -> Verdict {
        if head.method == .CONNECT {
            return .refuse(.notImplemented, "CONNECT is not served: this is not a proxy", [])
        }
        let protocols = head.headers[canonicalForm: "upgrade"].map { $0.lowercased() }
        guard !protocols.isEmpty else { return .pass }
        let path = Self.normalized(String(head.uri.prefix { $0 != "?" }))
        if protocols.contains("websocket"), head.method == .GET, webSocketPaths.contains(path) {
            guard head.headers["sec-websocket-version"] == ["13"] else {
                return .refuse(
                    .upgradeRequired, "Unsupported WebSocket version: send Sec-WebSocket-Version: 13",
                    [("Sec-WebSocket-Version", "13")])
            }
            let keys = head.headers["sec-websocket-key"]
            guard keys.count == 1, keys != [""] else {
                return .refuse(.badRequest, "A WebSocket upgrade needs one Sec-WebSocket-Key header", [])
            }
            return .upgrade
        }
        var plain = head
        plain.headers.remove(name: "upgrade")
        // NIO's decoder reads nothing more on a connection after a head it took for an upgrade
        // (`Connection: upgrade`): this answer is the connection's last.
        if head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }) {
            plain.headers.replaceOrAdd(name: "connection", value: "close")
        }
        return .ignoreUpgrade(plain)
    }

    /// `/ws/events/` and `//ws/events` are `/ws/events`, as the router matches them.
    static func normalized(_ path: String) -> String {
        "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }
}
