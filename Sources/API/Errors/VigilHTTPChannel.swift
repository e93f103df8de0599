import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// The server's connections: HTTP/1.1 with the WebSocket upgrade (``LogSocket``), plus what
/// Hummingbird's upgrade channel leaves out until a first request head has been read — an answer
/// to a request the parser can't read (``ParseErrorResponder``) and a deadline for that head
/// (``FirstRequestDeadline``) — HTTP/1.0's close after each answer (``ConnectionCloseMarker``),
/// and an answer to every `Upgrade` header, served or not (``UpgradeGate``). All go right after
/// NIO's HTTP decoder, the gate first.
struct VigilHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value

    let base: HTTP1WebSocketUpgradeChannel
    let firstRequestTimeout: TimeAmount
    let webSocketPaths: Set<String>

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(FirstRequestDeadline(timeout: firstRequestTimeout), position: .after(decoder))
            try pipeline.addHandler(ParseErrorResponder(), position: .after(decoder))
            try pipeline.addHandler(ConnectionCloseMarker(), position: .after(decoder))
            try pipeline.addHandler(UpgradeGate(webSocketPaths: webSocketPaths), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the WebSocket upgrade to `webSocketRouter`'s routes (``VigilHTTPChannel``).
    static func vigil(
        webSocketRouter: Router<VigilRequestContext>, idleTimeout: Duration, webSocket: WebSocketServerConfiguration
    ) -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        let webSocketPaths = Set(webSocketRouter.routes.map { "\($0.path)" })
        return HTTPServerBuilder { responder in
            VigilHTTPChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(idleTimeout: TimeAmount(idleTimeout)), ws: webSocket)),
                firstRequestTimeout: TimeAmount(idleTimeout),
                webSocketPaths: webSocketPaths)
        }
    }
}
