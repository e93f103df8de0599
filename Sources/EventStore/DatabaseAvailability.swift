import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Whether PostgreSQL answers, probed once a second through the pool.
///
/// While PostgreSQL is down, PostgresNIO's pool queues every request for a connection until
/// its circuit breaker opens (a minute of failed attempts): requests would hang. The API asks
/// this instead and answers `503` at once while the database is down, and cuts short the
/// requests that were already waiting when it went down.
public final class DatabaseAvailability: Service, Sendable {
    public struct Status: Sendable {
        public var isUp: Bool
        /// Why the last probe failed.
        public var error: String?
        public var since: Date
    }

    private let client: PostgresClient
    private let logger: Logger
    private let interval: Duration
    private let timeout: Duration
    private let status = Mutex(Status(isUp: true, error: nil, since: Date()))
    /// Bumped at every change of `isUp`.
    private let changes = ChangeSignal()

    public init(
        client: PostgresClient, logger: Logger, interval: Duration = .seconds(1), timeout: Duration = .seconds(2)
    ) {
        self.client = client
        self.logger = logger
        self.interval = interval
        self.timeout = timeout
    }

    public var current: Status { status.withLock { $0 } }
    public var isUp: Bool { status.withLock { $0.isUp } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let failure = await self.probe()
                self.record(failure)
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// Returns when the database is (or goes) down, or when the task is cancelled.
    public func waitUntilDown() async {
        while !Task.isCancelled {
            let seen = changes.generation
            guard isUp else { return }
            await changes.waitForChange(after: seen)
        }
    }

    /// One `SELECT 1`, given `timeout`; nil when it answered, else why not.
    private func probe() async -> String? {
        let client = self.client
        let logger = self.logger
        switch await withDeadline(timeout, { try await client.guardedQuery("SELECT 1", logger: logger) }) {
        case .success: return nil
        case .failure(let error): return String(describing: error)
        case nil: return "no answer within \(timeout)"
        }
    }

    private func record(_ failure: String?) {
        let changed = status.withLock { status in
            let up = failure == nil
            defer { status.error = failure }
            guard status.isUp != up else { return false }
            status.isUp = up
            status.since = Date()
            return true
        }
        guard changed else { return }
        if let failure {
            logger.error("PostgreSQL is down: answering 503 until it is back", metadata: ["error": "\(failure)"])
        } else {
            logger.notice("PostgreSQL is back")
        }
        changes.bump()
    }
}
