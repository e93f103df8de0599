import Foundation
import PostgresNIO
import Synchronization

/// A TCP proxy on loopback in front of PostgreSQL that can lose the answer to a `COMMIT`.
///
/// Armed for one backend (by pid), it forwards that session's next `COMMIT` to the server, and
/// when the server answers (the transaction is committed by then) it closes the client's
/// connection instead of passing the answer on: the client can't tell whether it committed.
final class CommitAckDropper: Sendable {
    let port: Int
    private let server: any Channel
    private let state: State

    final class State: Sendable {
        private let value = Mutex((armed: Int32?.none, dropped: [Int32]()))
        func arm(_ pid: Int32) { value.withLock { $0.armed = pid } }
        /// Takes the arming if it is for `pid`.
        func take(_ pid: Int32) -> Bool {
            value.withLock {
                guard $0.armed == pid else { return false }
                $0.armed = nil
                return true
            }
        }
        func dropped(_ pid: Int32) { value.withLock { $0.dropped.append(pid) } }
        var droppedAcks: [Int32] { value.withLock { $0.dropped } }
    }

    private init(port: Int, server: any Channel, state: State) {
        self.port = port
        self.server = server
        self.state = state
    }

    /// Starts the proxy in front of `host:port`.
    static func start(to host: String, port: Int) async throws -> CommitAckDropper {
        let state = State()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { client in
                ClientBootstrap(group: client.eventLoop).connect(host: host, port: port).flatMapThrowing { upstream in
                    let session = Session(state: state, client: client, upstream: upstream)
                    try client.pipeline.syncOperations.addHandler(ClientSide(session: session))
                    try upstream.pipeline.syncOperations.addHandler(ServerSide(session: session))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return CommitAckDropper(port: server.localAddress?.port ?? 0, server: server, state: state)
    }

    /// Loses the answer to the next `COMMIT` of backend `pid`.
    func arm(pid: Int32) { state.arm(pid) }

    /// The backends whose `COMMIT` answer was lost.
    var droppedAcks: [Int32] { state.droppedAcks }

    func stop() async throws { try await server.close() }

    /// One proxied connection. Used on its event loop only (both channels share it).
    final class Session: @unchecked Sendable {
        let state: State
        let client: any Channel
        let upstream: any Channel
        /// The backend's pid, from its BackendKeyData message at startup.
        var pid: Int32?
        /// Server bytes before the pid was found (messages may span reads).
        var startup = ByteBuffer()
        /// This session's `COMMIT` went to the server armed: its answer is to be lost.
        var commitSent = false

        init(state: State, client: any Channel, upstream: any Channel) {
            self.state = state
            self.client = client
            self.upstream = upstream
        }

        func closeBoth() {
            client.close(promise: nil)
            upstream.close(promise: nil)
        }
    }

    /// Client → server: forwards, and notices an armed session's `COMMIT`.
    final class ClientSide: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let session: Session
        static let commit = Array("COMMIT".utf8)

        init(session: Session) { self.session = session }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            if let pid = session.pid, !session.commitSent,
                buffer.readableBytesView.firstRange(of: Self.commit) != nil, session.state.take(pid)
            {
                session.commitSent = true
            }
            session.upstream.writeAndFlush(buffer, promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) { session.closeBoth() }
    }

    /// Server → client: forwards, learns the pid, and loses the answer to an armed `COMMIT`.
    final class ServerSide: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let session: Session

        init(session: Session) { self.session = session }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            if session.commitSent {
                // The server has committed and answers: the client never hears it.
                if let pid = session.pid { session.state.dropped(pid) }
                session.closeBoth()
                return
            }
            if session.pid == nil {
                var copy = buffer
                session.startup.writeBuffer(&copy)
                findPID()
            }
            session.client.writeAndFlush(buffer, promise: nil)
        }

        /// Walks the startup messages (type byte, length) to BackendKeyData ('K': pid, key).
        private func findPID() {
            var view = session.startup
            while let type = view.getInteger(at: view.readerIndex, as: UInt8.self),
                let length = view.getInteger(at: view.readerIndex + 1, as: Int32.self),
                view.readableBytes >= 1 + Int(length)
            {
                if type == UInt8(ascii: "K") {
                    session.pid = view.getInteger(at: view.readerIndex + 5, as: Int32.self)
                    session.startup = ByteBuffer()
                    return
                }
                view.moveReaderIndex(forwardBy: 1 + Int(length))
            }
        }

        func channelInactive(context: ChannelHandlerContext) { session.closeBoth() }
    }
}
