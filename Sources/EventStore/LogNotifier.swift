import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens for the log's `NOTIFY vigil_events` on one dedicated connection and wakes every
/// tailer of this process through one ``ChangeSignal``, and every read-your-writes waiter
/// through another (``progress``) when a projection runner, on any instance, commits a batch.
///
/// A notification is only a hint: tailers always re-read the table, waiters the checkpoints.
/// When the listening connection drops, the notifier reconnects and bumps both signals so
/// nobody waits on a notification that was lost meanwhile.
public final class LogNotifier: Service, Sendable {
    public static let channel = "vigil_events"
    /// The payload prefix of a projection runner's notification (the log's is a position).
    public static let progressPrefix = "projection:"

    /// Bumped when events were appended.
    public let signal = ChangeSignal()
    /// Bumped when a projection's checkpoint moved.
    public let progress = ChangeSignal()
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
                            // Catch up on whatever happened before LISTEN.
                            self.signal.bump()
                            self.progress.bump()
                            for try await notification in notifications {
                                if notification.payload.hasPrefix(Self.progressPrefix) {
                                    self.progress.bump()
                                } else {
                                    self.signal.bump()
                                }
                            }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    self.logger.warning("log notifications interrupted, reconnecting", metadata: ["error": "\(error)"])
                }
                self.signal.bump()
                self.progress.bump()
                // A connection that listened a while was healthy: the backoff starts over.
                if ContinuousClock.now - started >= .seconds(10) { delay = .milliseconds(100) }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
