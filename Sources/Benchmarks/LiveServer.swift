import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

/// The whole server on a loopback port the system picks, for as long as a benchmark runs, and
/// AsyncHTTPClient to reach it over real HTTP as any client would. (Not HummingbirdTesting: the
/// shipped binary links no test library.)
struct LiveServer: Sendable {
    let port: Int
    let http: HTTPClient

    var base: String { "http://127.0.0.1:\(port)" }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: ByteBuffer
    }

    /// Sends one request; sequential calls reuse one keep-alive connection.
    func execute(
        _ uri: String, method: HTTPMethod = .GET, headers: HTTPHeaders = [:], body: ByteBuffer? = nil
    ) async throws -> Response {
        var request = HTTPClientRequest(url: base + uri)
        request.method = method
        request.headers = headers
        if let body { request.body = .bytes(body) }
        let response = try await http.execute(request, timeout: .seconds(300))
        return Response(status: response.status, body: try await response.body.collect(upTo: 256 << 20))
    }

    /// Runs `app` (built for port 0 on 127.0.0.1) until `body` returns or throws, then shuts it
    /// down gracefully; SIGINT and SIGTERM shut it down too, which fails `body`'s requests.
    static func run<App: ApplicationProtocol, Value: Sendable>(
        _ app: App, http: HTTPClient = .shared, logger: Logger, _ body: (LiveServer) async throws -> Value
    ) async throws -> Value {
        let (ports, listening) = AsyncStream.makeStream(of: Int.self)
        let services = ServiceGroup(
            configuration: .init(
                services: [Reporting(base: app, listening: listening)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { listening.finish() }
                try await services.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.waitForAll()  // rethrows why the server stopped
                throw LiveServerError()
            }
            do {
                let value = try await body(LiveServer(port: port, http: http))
                await services.triggerGracefulShutdown()
                try await group.waitForAll()
                return value
            } catch {
                await services.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    struct LiveServerError: Error, CustomStringConvertible {
        var description: String { "the server stopped before it listened" }
    }

    /// `Base`, reporting the port it listens on once it does.
    struct Reporting<Base: ApplicationProtocol>: ApplicationProtocol {
        typealias Responder = Base.Responder

        let base: Base
        let listening: AsyncStream<Int>.Continuation

        var responder: Responder { get async throws { try await base.responder } }
        var server: HTTPServerBuilder { base.server }
        var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
        var configuration: ApplicationConfiguration { base.configuration }
        var logger: Logger { base.logger }
        var services: [any Service] { base.services }
        var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { base.processesRunBeforeServerStart }

        @Sendable func onServerRunning(_ channel: any Channel) async {
            await base.onServerRunning(channel)
            listening.yield(channel.localAddress?.port ?? 0)
        }
    }
}
