import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// `vigil bench ws-fanout --port P`: the baseline of `vigil bench ws`, a bare
/// hummingbird-websocket fan-out with Vigil's shape and nothing else — one broadcaster, one
/// bounded stream per socket, no database. `POST /publish` sends its body to every socket of
/// `/ws` as a text message; a socket gets `{"type":"subscribed"}` first. Run by the benchmark
/// as a process of its own, so that its resident memory is the server's alone.
struct FanoutServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-fanout", abstract: "The bare WebSocket fan-out `vigil bench ws` measures against.",
        shouldDisplay: false)

    @Option(help: "Port to listen on (127.0.0.1).")
    var port: Int

    /// Every open socket's stream.
    final class Hub: Sendable {
        private let sockets = Mutex<(all: [UInt64: AsyncStream<ByteBuffer>.Continuation], next: UInt64)>(([:], 0))

        func add(_ continuation: AsyncStream<ByteBuffer>.Continuation) -> UInt64 {
            sockets.withLock { state in
                state.next += 1
                state.all[state.next] = continuation
                return state.next
            }
        }

        func remove(_ id: UInt64) { _ = sockets.withLock { $0.all.removeValue(forKey: id) } }

        func broadcast(_ message: ByteBuffer) {
            sockets.withLock { state in for continuation in state.all.values { continuation.yield(message) } }
        }
    }

    func run() async throws {
        let logger = Bench.quietLogger()
        let hub = Hub()
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.get("/health") { _, _ in "ok" }
        router.post("/publish") { request, _ -> HTTPResponse.Status in
            hub.broadcast(try await request.body.collect(upTo: 1 << 20))
            return .ok
        }
        let sockets = Router(context: BasicWebSocketRequestContext.self)
        sockets.ws("/ws") { inbound, outbound, _ in
            // Bounded as Vigil's sockets are (VIGIL_WS_BUFFER's default).
            let (stream, continuation) = AsyncStream.makeStream(
                of: ByteBuffer.self, bufferingPolicy: .bufferingOldest(1024))
            let id = hub.add(continuation)
            defer { hub.remove(id) }
            try await outbound.write(.text(#"{"type":"subscribed"}"#))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { for try await _ in inbound {} }
                group.addTask {
                    // As Vigil sends: the rendered buffer as the frame, no copy.
                    for await message in stream {
                        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: message)))
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
        let app = Application(
            router: router, server: .http1WebSocketUpgrade(webSocketRouter: sockets),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "fanout"), logger: logger)
        try await app.runService()
    }
}
