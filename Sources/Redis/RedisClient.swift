import Foundation
import Logging
import Synchronization

/// Vigil's Redis client: a small pool of hiredis connections that any task can share.
///
/// hiredis blocks, so every command runs on its connection's own dispatch queue, never on the
/// Swift concurrency pool or a NIO event loop. Connections open lazily and a broken one is
/// reopened by the next call, so while Redis is down calls throw ``RedisError/connection(_:)``
/// and they work again once it is back, with the same client. Blocking commands (``blmove(_:_:from:to:timeout:)``,
/// ``brpop(_:timeout:)``) use connections of their own so they never hold up other commands.
public final class RedisClient: Sendable {
    public let settings: RedisSettings
    private let commands: ConnectionPool
    private let blocking: ConnectionPool
    private let failures = Atomic<Int>(0)

    /// Commands that failed since the client was made (Redis down or refusing, timeouts; not
    /// cancellations): for metrics.
    public var errorCount: Int { failures.load(ordering: .relaxed) }

    /// Blocking commands wait in chunks this long so a cancelled task returns soon.
    static let blockingChunk = Duration.seconds(1)

    public init(settings: RedisSettings, logger: Logger = Logger(label: "vigil.redis")) {
        _ = Self.ignoreBrokenPipes
        self.settings = settings
        let makeConnection: @Sendable () -> RedisConnection = {
            RedisConnection(settings: settings, logger: logger)
        }
        commands = ConnectionPool(maximum: settings.maximumConnections, makeConnection: makeConnection)
        blocking = ConnectionPool(maximum: settings.maximumBlockingConnections, makeConnection: makeConnection)
    }

    public convenience init(
        host: String, port: Int = 6379, password: String? = nil, connectTimeout: Duration = .seconds(2),
        logger: Logger = Logger(label: "vigil.redis")
    ) {
        var settings = RedisSettings(host: host, port: port, password: password)
        settings.connectTimeout = connectTimeout
        self.init(settings: settings, logger: logger)
    }

    /// Sends any command, e.g. `["TTL", key]`. A blocking command must use a typed helper: here
    /// it would time out after ``RedisSettings/commandTimeout``.
    public func send(_ arguments: [String]) async throws -> RedisValue {
        try await send(arguments.map { Array($0.utf8) })
    }

    /// Sends any command whose arguments are raw bytes.
    public func send(_ arguments: [[UInt8]]) async throws -> RedisValue {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        return try await counted {
            try await commands.withConnection { connection in
                try await connection.execute(arguments, timeout: settings.commandTimeout)
            }
        }
    }

    /// Runs `body`, counting its failure (a `RedisError`) in ``errorCount``.
    private func counted<Value>(_ body: () async throws -> Value) async throws -> Value {
        do {
            return try await body()
        } catch let error as RedisError {
            failures.wrappingAdd(1, ordering: .relaxed)
            throw error
        }
    }

    /// Sends a command that must answer within `limit` (a cache read or write, which is worth
    /// less than the time a hung Redis would cost): throws ``RedisError/timeout(_:)`` when it
    /// doesn't, and the connection it was on is replaced, never reused.
    public func send(_ arguments: [String], within limit: Duration) async throws -> RedisValue {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        return try await counted {
            try await commands.execute(arguments.map { Array($0.utf8) }, socketTimeout: limit, within: limit)
        }
    }

    /// Closes every connection (those in use once their command is done); later calls throw
    /// ``RedisError/connection(_:)``.
    public func shutdown() {
        commands.shutdown()
        blocking.shutdown()
    }

    /// Runs a blocking command, `command(timeout)` being the command with its timeout argument,
    /// until it returns something other than null, `timeout` seconds pass (0: forever) or the task
    /// is cancelled (throws `CancellationError`). It waits in chunks of at most ``blockingChunk``
    /// on a connection of its own.
    func sendBlocking(timeout: Double, _ command: (_ timeout: String) -> [String]) async throws -> RedisValue {
        precondition(timeout >= 0 && timeout.isFinite, "a blocking timeout is a number of seconds, 0 for none")
        let clock = ContinuousClock()
        let deadline = timeout > 0 ? clock.now + .seconds(timeout) : nil
        return try await counted {
            try await blockingLoop(deadline: deadline, clock: clock, command)
        }
    }

    private func blockingLoop(
        deadline: ContinuousClock.Instant?, clock: ContinuousClock, _ command: (_ timeout: String) -> [String]
    ) async throws -> RedisValue {
        try await blocking.withConnection { connection in
            while true {
                try Task.checkCancellation()
                var chunk = Self.blockingChunk
                if let deadline {
                    let remaining = clock.now.duration(to: deadline)
                    if remaining <= .zero { return .null }
                    // Redis reads a timeout of 0 as "forever": never send less than 10 ms.
                    chunk = max(min(chunk, remaining), .milliseconds(10))
                }
                let milliseconds =
                    chunk.components.seconds * 1000 + chunk.components.attoseconds / 1_000_000_000_000_000
                let arguments = command(String(format: "%.3f", Double(milliseconds) / 1000))
                let reply = try await connection.execute(
                    arguments.map { Array($0.utf8) }, timeout: chunk + settings.commandTimeout)
                if reply != .null { return reply }  // even if cancelled meanwhile: the value has moved
            }
        }
    }

    /// hiredis writes with write(2), which raises SIGPIPE when Redis has closed the socket; the
    /// default action would kill the whole process instead of failing one call. This is process
    /// wide (and inherited by child processes), as servers usually have it anyway.
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}
