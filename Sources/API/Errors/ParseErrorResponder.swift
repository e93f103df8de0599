import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// When NIO's HTTP parser can't read a request (raw bytes in the request line, a head over the
/// size limit such as a 100 kB query string), answers `400 {"detail": …}` in the seed's format
/// and closes the connection, instead of Hummingbird's empty 400. Sits after the HTTP codec
/// (`additionalChannelHandlers`); every other error goes on down the pipeline.
final class ParseErrorResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private var responded = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !responded else { return }
        responded = true
        var body = JSONWriter()
        body.object { $0.field("detail", Self.detail(parseError)) }
        let bytes = body.buffer
        var fields = HTTPFields()
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.contentLength] = String(bytes.readableBytes)
        fields[.connection] = "close"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .badRequest, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(bytes)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    static func detail(_ error: HTTPParserError) -> String {
        switch error {
        case .headerOverflow: "Request line and headers too large"
        case .invalidURL: "Malformed request: invalid URL"
        default: "Malformed request: \(error)"
        }
    }
}
