import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens for the log's `NOTIFY vigil_events` on one dedicated connection and wakes every
/// tailer of this process through one ``ChangeSignal``.
///
/// A notification is only a hint: tailers always re-read the table. When the listening
/// connection drops, the notifier reconnects and bumps the signal so nobody waits on a
/// notification that was lost meanwhile.
public final class LogNotifier: Service, Sendable {
    public static let channel = "vigil_events"

    public let signal = ChangeSignal()
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var delay = Duration.milliseconds(100)
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    try await self.client.withOpenConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            self.signal.bump()  // catch up on whatever happened before LISTEN
                            for try await _ in notifications { self.signal.bump() }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    self.logger.warning("log notifications interrupted, reconnecting", metadata: ["error": "\(error)"])
                }
                self.signal.bump()
                // A connection that listened a while was healthy: the backoff starts over.
                if ContinuousClock.now - started >= .seconds(10) { delay = .milliseconds(100) }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
