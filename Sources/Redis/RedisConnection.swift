import CHiredis
import Dispatch
import Foundation
import Logging
import Synchronization

/// One hiredis context, opened on first use and reopened after it breaks. hiredis blocks and is
/// not thread safe, so every call runs on this connection's own serial dispatch queue (off the
/// Swift concurrency pool and NIO's event loops) and the context lives in a mutex.
final class RedisConnection: Sendable {
    private struct State {
        var context: UnsafeMutablePointer<redisContext>?
        /// The socket timeout currently set on `context`.
        var timeout: Duration = .zero
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let settings: RedisSettings
    private let logger: Logger

    init(settings: RedisSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.queue = DispatchQueue(label: "vigil.redis.\(settings.host):\(settings.port)")
    }

    deinit {
        state.withLock { Self.free(&$0) }
    }

    /// Runs one command, waiting at most `timeout` for the socket (connecting takes at most the
    /// connect timeout on top). A broken or timed-out connection is closed and reopened by the
    /// next call.
    func execute(_ arguments: [[UInt8]], timeout: Duration) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            submit(arguments, timeout: timeout) { continuation.resume(with: $0) }
        }
    }

    /// Like ``execute(_:timeout:)``, calling `completion` on this connection's queue.
    func submit(
        _ arguments: [[UInt8]], timeout: Duration,
        completion: @escaping @Sendable (Result<RedisValue, any Error>) -> Void
    ) {
        queue.async { completion(Result { try self.executeNow(arguments, timeout: timeout) }) }
    }

    /// Frees the context once the call in progress, if any, is done.
    func close() {
        queue.async { self.state.withLock { Self.free(&$0) } }
    }

    private func executeNow(_ arguments: [[UInt8]], timeout: Duration) throws -> RedisValue {
        try state.withLock { state in
            if let context = state.context, !Self.isIdleAndOpen(context) {
                logger.debug("Redis closed an idle connection, reconnecting")
                Self.free(&state)
            }
            if state.context == nil {
                state.context = try open()
                state.timeout = settings.commandTimeout
            }
            let context = state.context!
            do {
                if state.timeout != timeout {
                    try Self.setTimeout(context, timeout)
                    state.timeout = timeout
                }
                return try Self.run(context, arguments)
            } catch RedisError.connection(let message) {
                Self.free(&state)
                logger.warning(
                    "Redis connection lost, reconnecting on the next call",
                    metadata: ["redis": "\(settings.host):\(settings.port)", "error": "\(message)"])
                throw RedisError.connection(message)
            }
        }
    }

    private func open() throws -> UnsafeMutablePointer<redisContext> {
        let address = "\(settings.host):\(settings.port)"
        guard
            let context = redisConnectWithTimeout(settings.host, Int32(settings.port), timeval(settings.connectTimeout))
        else { throw RedisError.connection("cannot allocate a connection to \(address)") }
        do {
            guard context.pointee.err == 0 else { throw RedisError.connection(Self.errorMessage(context)) }
            try Self.setTimeout(context, settings.commandTimeout)
            if let password = settings.password {
                _ = try Self.run(context, [Array("AUTH".utf8), Array(password.utf8)])
            }
        } catch {
            redisFree(context)
            let reason =
                switch error {
                case RedisError.connection(let message), RedisError.server(let message): message
                default: "\(error)"
                }
            throw RedisError.connection("cannot connect to \(address): \(reason)")
        }
        logger.debug("connected to Redis", metadata: ["redis": "\(address)"])
        return context
    }

    private static func free(_ state: inout State) {
        if let context = state.context { redisFree(context) }
        state.context = nil
    }

    /// Whether the server has neither closed the connection nor sent anything unasked since the
    /// last reply, so a Redis restart doesn't fail the next command sent on an old connection.
    private static func isIdleAndOpen(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        var byte: UInt8 = 0
        let received = recv(context.pointee.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    private static func setTimeout(_ context: UnsafeMutablePointer<redisContext>, _ timeout: Duration) throws {
        guard redisSetTimeout(context, timeval(timeout)) == REDIS_OK else {
            throw RedisError.connection("cannot set the socket timeout: \(errorMessage(context))")
        }
    }

    /// Sends one command, binary safe (explicit argument lengths), and reads its reply.
    private static func run(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]]) throws -> RedisValue
    {
        var buffer: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(buffer.count)
            lengths.append(argument.count)
            buffer.append(contentsOf: argument)
        }
        buffer.append(0)  // never empty, so there is a base address even if every argument is ""
        let raw = buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                var pointers: [UnsafePointer<CChar>?] = offsets.map { chars.baseAddress! + $0 }
                return redisCommandArgv(context, Int32(arguments.count), &pointers, lengths)
            }
        }
        guard let raw else { throw RedisError.connection(errorMessage(context)) }
        defer { freeReplyObject(raw) }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        if reply.pointee.type == REDIS_REPLY_ERROR { throw RedisError.server(text(reply)) }
        return value(reply)
    }

    private static func value(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        switch reply.pointee.type {
        case REDIS_REPLY_STRING: .string(bytes(reply))
        case REDIS_REPLY_INTEGER: .integer(Int64(reply.pointee.integer))
        case REDIS_REPLY_STATUS: .status(text(reply))
        case REDIS_REPLY_ERROR: .error(text(reply))
        case REDIS_REPLY_ARRAY:
            .array((0..<reply.pointee.elements).map { value(reply.pointee.element[$0]!) })
        default: .null
        }
    }

    private static func bytes(_ reply: UnsafeMutablePointer<redisReply>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: reply.pointee.str, count: reply.pointee.len))
    }

    private static func text(_ reply: UnsafeMutablePointer<redisReply>) -> String {
        String(decoding: bytes(reply), as: UTF8.self)
    }

    private static func errorMessage(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: context.pointee.errstr) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        // A socket timeout surfaces as EAGAIN.
        if context.pointee.err == REDIS_ERR_IO && message == String(cString: strerror(EAGAIN)) {
            return "timed out waiting for Redis"
        }
        return message.isEmpty ? "hiredis error \(context.pointee.err)" : message
    }
}

extension timeval {
    fileprivate init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: time_t(seconds), tv_usec: suseconds_t(attoseconds / 1_000_000_000_000))
    }
}
