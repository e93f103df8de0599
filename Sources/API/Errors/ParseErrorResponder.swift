import NIOCore
import NIOHTTP1

/// When NIO's HTTP parser can't read a request (raw bytes in the request line, a head over the
/// size limit such as a 100 kB query string), answers `400 {"detail": …}` in the seed's format
/// and closes the connection, instead of an empty 400 or none at all.
///
/// It sits right after the HTTP decoder (``VigilHTTPChannel``), in NIO's own HTTP types: there
/// it sees the parse errors of a connection's first request too, which arrive while the
/// WebSocket upgrader is still deciding and Hummingbird's handlers are not in the pipeline yet
/// (behind the upgrader, such a request got no answer and the connection stayed open). Every
/// other error, and every read, goes on down the pipeline.
final class ParseErrorResponder: ChannelInboundHandler, RemovableChannelHandler {
    /// Never unwrapped: after a WebSocket upgrade, frames' bytes pass through here too.
    typealias InboundIn = HTTPServerRequestPart

    private var responded = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !responded else { return }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !responded else { return }
        responded = true
        context.answerAndClose(.badRequest, detail: Self.detail(parseError))
    }

    static func detail(_ error: HTTPParserError) -> String {
        switch error {
        case .headerOverflow: "Request line and headers too large"
        case .invalidURL: "Malformed request: invalid URL"
        default: "Malformed request: \(error)"
        }
    }
}

extension ChannelHandlerContext {
    /// Writes `status` with `{"detail": detail}` in NIO's HTTP types and closes the connection:
    /// the answers given before Hummingbird's handlers are in the pipeline (``ParseErrorResponder``,
    /// ``UpgradeGate``).
    func answerAndClose(_ status: HTTPResponseStatus, detail: String, headers extra: [(String, String)] = []) {
        var body = JSONWriter()
        body.object { $0.field("detail", detail) }
        let bytes = body.buffer
        var headers = HTTPHeaders(extra)
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Content-Length", value: String(bytes.readableBytes))
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(bytes))), promise: nil)
        let context = NIOLoopBound(self, eventLoop: eventLoop)
        writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            context.value.close(promise: nil)
        }
    }
}

/// Closes a connection whose first request head has not arrived within `timeout` (a client
/// that connects and sends nothing, or half a head). Once the head is read, Hummingbird's own
/// idle timeout (HTTP) or the WebSocket's pings take over; this handler then only passes reads
/// on. Needed because behind the WebSocket upgrader Hummingbird adds its idle timeout only
/// after the first head.
final class FirstRequestDeadline: ChannelInboundHandler, RemovableChannelHandler {
    /// Unwrapped only until the first head: after a WebSocket upgrade, frames' bytes pass through.
    typealias InboundIn = HTTPServerRequestPart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var headRead = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !headRead, case .head = unwrapInboundIn(data) {
            headRead = true
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }
}

/// Marks a request whose connection must close after its answer with the `Connection: close`
/// Hummingbird looks for. HTTP/1.0 closes after each answer unless the request asks to keep it
/// alive (RFC 9112 §9.3), but Hummingbird's HTTP types carry no version, so it kept such
/// connections open: a client reading an answer to its end (ApacheBench without `-k`) waited
/// for the idle timeout. Hummingbird also compares the header's value with `close` exactly,
/// where `Close` means the same. NIO's `isKeepAlive` decides both.
///
/// It sits right after the HTTP decoder (``VigilHTTPChannel``) and leaves the pipeline at a
/// WebSocket upgrade's head: after it, frames' bytes pass there.
final class ConnectionCloseMarker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        if head.headers.contains(name: "upgrade") {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        if !head.isKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }
}
