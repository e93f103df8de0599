import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Whether PostgreSQL answers, probed once a second on a connection of its own.
///
/// While PostgreSQL is down, PostgresNIO's pool queues every request for a connection until
/// its circuit breaker opens (a minute of failed attempts): requests would hang. The API asks
/// this instead and answers `503` at once while the database is down, and cuts short the
/// requests that were already waiting when it went down.
///
/// The probe has a connection of its own, outside the pool, so a busy pool (every connection
/// leased, requests waiting their turn) is never taken for an outage. Two failed probes in a
/// row (refused, closed, an error) mean down; a probe that only got no answer within 3 s counts
/// as a failure only after `timeoutsToGoDown` of them in a row (5, ~20 s): a machine loaded
/// enough to starve the probe is slow, not down, and answering 503 would turn slowness into
/// failures. One answer means up again.
///
/// With the server's `pool`, each probe that got an answer also leases a pooled connection:
/// when none comes within `leaseTimeout` *and* PostgreSQL refuses a new connection (its
/// `max_connections` taken by another client, Vigil's pooled sessions ended), requests can't
/// get one either; that counts as a failed probe too, so they get a fast 503 instead of waiting
/// as long as the slots stay taken. A pool that is only busy (a new connection opens) is not
/// down.
public final class DatabaseAvailability: Service, Sendable {
    public struct Status: Sendable {
        public var isUp: Bool
        /// Why the last probe failed.
        public var error: String?
        public var since: Date
    }

    private let configuration: PostgresConnection.Configuration?
    private let configurationError: String?
    private let logger: Logger
    private let interval: Duration
    private let timeout: Duration
    private let pool: PostgresClient?
    private let leaseTimeout: Duration
    private let failuresToGoDown = 2
    private let timeoutsToGoDown: Int
    private let status = Mutex(Status(isUp: true, error: nil, since: Date()))
    private let connection = Mutex<PostgresConnection?>(nil)
    /// How to cancel each ``untilDown(_:)`` body running now: all are run when the database goes
    /// down.
    private let inFlight = Mutex<(next: UInt64, cancels: [UInt64: @Sendable () -> Void])>((0, [:]))

    public init(
        settings: PostgresSettings, logger: Logger, interval: Duration = .seconds(1), timeout: Duration = .seconds(3),
        pool: PostgresClient? = nil, leaseTimeout: Duration = .seconds(1), timeoutsToGoDown: Int = 5
    ) {
        self.pool = pool
        self.timeoutsToGoDown = timeoutsToGoDown
        self.leaseTimeout = leaseTimeout
        var settings = settings
        settings.applicationName = "vigil-probe"
        do {
            self.configuration = try settings.connectionConfiguration(connectTimeout: timeout)
            self.configurationError = nil
        } catch {
            self.configuration = nil
            self.configurationError = String(describing: error)
        }
        self.logger = logger
        self.interval = interval
        self.timeout = timeout
    }

    public var current: Status { status.withLock { $0 } }
    public var isUp: Bool { status.withLock { $0.isUp } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var misses = 0
            var errors = 0
            while !Task.isCancelled {
                var (failure, timedOut) = await self.probe()
                if failure == nil, let starved = await self.probePool() { (failure, timedOut) = (starved, false) }
                misses = failure == nil ? 0 : misses + 1
                errors = failure == nil || timedOut ? 0 : errors + 1
                if failure == nil || errors >= self.failuresToGoDown || misses >= self.timeoutsToGoDown {
                    self.record(failure)
                }
                try? await Task.sleep(for: self.interval)
            }
        }
        if let connection = connection.withLock({ $0 }) { try? await connection.close() }
    }

    /// The database is down (see ``untilDown(_:)``).
    public struct Down: Error {}

    /// Runs `body` until it returns or the database goes down, whichever comes first: a body
    /// still waiting then (for a pooled connection, an answer) is cancelled, and this throws
    /// ``Down`` (at once when the database is down already).
    ///
    /// `body` runs in a task of its own, which ``record(_:)`` cancels when the database goes
    /// down (a hook per request, not a task waiting for the news beside each one: a task group
    /// with a waiting task around every request cost a write node 4–18% of its POSTs a second;
    /// docs/BENCHMARKS.md, Ingest, session 45).
    public func untilDown<Value: Sendable>(_ body: () async throws -> Value) async throws -> Value {
        guard isUp else { throw Down() }
        return try await withoutActuallyEscaping(body) { escapingBody in
            // Safe: the task is awaited to its end before this closure returns, so `body` never
            // outlives the call it was passed to.
            nonisolated(unsafe) let body = escapingBody
            let task = Task { try await body() }
            let hook = inFlight.withLock { inFlight in
                inFlight.next += 1
                inFlight.cancels[inFlight.next] = { task.cancel() }
                return inFlight.next
            }
            defer { _ = inFlight.withLock { $0.cancels.removeValue(forKey: hook) } }
            // Down between the first look and the hook: `record` may have run the hooks already.
            if !isUp { task.cancel() }
            let result = await withTaskCancellationHandler {
                await task.result
            } onCancel: {
                task.cancel()
            }
            switch result {
            case .success(let value): return value
            case .failure where !isUp: throw Down()
            case .failure(let error): throw error
            }
        }
    }

    /// One `SELECT 1` on the probe's connection (connecting first if it has none), given
    /// `timeout`; nil when it answered, else why not. A failed connection is dropped.
    ///
    /// A connection the probe opens is either kept (``adopt(_:)``) or closed by the task that
    /// opened it, whatever the deadline does: `withDeadline` abandons a late task, and a
    /// connection released without `close()` is a leak (and an assertion failure in PostgresNIO's
    /// debug builds, which aborts the process).
    private func probe() async -> (failure: String?, timedOut: Bool) {
        guard let configuration else { return (configurationError, false) }
        let logger = self.logger
        let existing = connection.withLock { $0 }
        let outcome = await withDeadline(timeout) { () -> Void in
            if let existing, !existing.isClosed {
                try await existing.guardedQuery("SELECT 1", logger: logger)
                return
            }
            let fresh = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0,
                logger: logger
            ).get()
            do {
                try await fresh.guardedQuery("SELECT 1", logger: logger)
            } catch {
                try? await fresh.close()
                throw error
            }
            guard self.adopt(fresh) else {
                try? await fresh.close()
                throw CancellationError()
            }
        }
        switch outcome {
        case .success:
            return (nil, false)
        case .failure(let error):
            await dropConnection()
            return (String(reflecting: error), false)
        case nil:
            await dropConnection()
            return ("no answer within \(timeout)", true)
        }
    }

    /// nil when a pooled connection comes within `leaseTimeout`, or when it doesn't but
    /// PostgreSQL still opens a new connection (the pool is busy, it will get one); else why
    /// requests can't get a connection.
    private func probePool() async -> String? {
        guard let pool, let configuration else { return nil }
        let logger = self.logger
        let leased = await withDeadline(leaseTimeout) {
            try await pool.withConnection { try await $0.guardedQuery("SELECT 1", logger: logger) }
        }
        if case .success = leased { return nil }
        // The task closes what it opened, even after the deadline gave up on it.
        let opened = await withDeadline(timeout) { () -> Void in
            let fresh = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1,
                logger: logger
            ).get()
            try? await fresh.close()
        }
        guard case .failure(let error) = opened else { return nil }
        return "no pooled connection within \(leaseTimeout), and PostgreSQL refuses new ones: "
            + String(reflecting: error)
    }

    /// Keeps `fresh` as the probe's connection unless the probe that opened it has given up
    /// (its deadline passed: the task is cancelled before the connection is dropped, so a
    /// connection adopted in time is closed by ``dropConnection()``, and a late one is refused
    /// and closed by its task).
    private func adopt(_ fresh: PostgresConnection) -> Bool {
        connection.withLock { current in
            guard !Task.isCancelled else { return false }
            current = fresh
            return true
        }
    }

    private func dropConnection() async {
        let dropped = connection.withLock { connection in
            defer { connection = nil }
            return connection
        }
        if let dropped { try? await dropped.close() }
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
            // After `isUp` turned false: a body hooked from now on sees it (``untilDown(_:)``).
            let cancels = inFlight.withLock { Array($0.cancels.values) }
            for cancel in cancels { cancel() }
        } else {
            logger.notice("PostgreSQL is back")
        }
    }
}
