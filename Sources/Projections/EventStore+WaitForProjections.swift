import EventStore
import Foundation
import Logging
import PostgresNIO

extension EventStore {
    /// Waits until the live generation of each of `projections` has applied the log up to
    /// `checkpoint` (a write's), so a response built from the read models, and the client's next
    /// read, show that write. Gives up after `timeout` (the projection may be lagging or not
    /// running): returns whether they caught up.
    ///
    /// With `progress` (``LogNotifier/progress``, bumped when any instance's runner commits a
    /// batch) it looks again when woken, and at the latest after `poll`; without, every `poll`.
    @discardableResult
    public func waitForProjections(
        _ projections: [String], toReach checkpoint: Checkpoint, timeout: Duration = .seconds(10),
        progress: ChangeSignal? = nil, poll: Duration = .milliseconds(5)
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        let transaction = String(checkpoint.transactionID)
        while true {
            let seen = progress?.generation ?? 0
            let rows = try await client.guardedQuery(
                """
                SELECT count(*) FILTER (
                    WHERE c.checkpoint_tx > \(transaction)::xid8
                       OR (c.checkpoint_tx = \(transaction)::xid8 AND c.checkpoint_position >= \(checkpoint.position)))
                FROM projections p
                JOIN projection_checkpoints c ON c.name = p.name AND c.generation = p.live_generation
                WHERE p.name = ANY(\(projections))
                """,
                logger: logger
            )
            var caughtUp: Int64 = 0
            for try await count in rows.decode(Int64.self) { caughtUp = count }
            if caughtUp == projections.count { return true }
            if ContinuousClock.now >= deadline {
                logger.warning(
                    "read models did not catch up with a write in time",
                    metadata: ["projections": "\(projections)", "checkpoint": "\(checkpoint)"])
                return false
            }
            if let progress {
                await progress.wait(after: seen, timeout: min(poll, deadline - .now))
                try Task.checkCancellation()
            } else {
                try await Task.sleep(for: poll)
            }
        }
    }
}
