import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` between `BEGIN` and `COMMIT` (or `ROLLBACK` when it throws), and rethrows the
    /// body's own error.
    ///
    /// Unlike PostgresNIO's `withTransaction`, a connection never goes back to the pool inside a
    /// transaction: the `ROLLBACK` is sent even when the calling task is cancelled, and a
    /// connection whose `BEGIN`, `ROLLBACK` or `COMMIT` failed is closed. (A pooled connection
    /// left in an open transaction would run its next user's queries inside it, and its old
    /// transaction id would hold every reader's horizon back.)
    public func inTransaction<Value>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Value
    ) async throws -> sending Value {
        guard !isClosed else { throw PostgresConnectionClosed() }
        do {
            try await guardedQuery("BEGIN", logger: logger)
        } catch {
            await abandonTransaction(logger: logger)
            throw error
        }
        let value: Value
        do {
            value = try await body(self)
        } catch {
            await abandonTransaction(logger: logger)
            throw error
        }
        // A query on a closed connection never completes (see `whileOpen`): don't send one.
        guard !isClosed else { throw PostgresConnectionClosed() }
        do {
            try await guardedQuery("COMMIT", logger: logger)
        } catch {
            // Committed or not, this connection's state is unknown: don't reuse it.
            await closeShielded()
            throw error
        }
        return value
    }

    /// Rolls back, shielded from the caller's cancellation (an awaited task of its own, which
    /// doesn't inherit it); closes the connection if that fails.
    private func abandonTransaction(logger: Logger) async {
        // Closed: the server has rolled back already, and a ROLLBACK sent now would never answer.
        guard !isClosed else { return }
        let connection = self
        let rolledBack = await Task {
            (try? await connection.guardedQuery("ROLLBACK", logger: logger)) != nil
        }.value
        if !rolledBack { await closeShielded() }
    }

    private func closeShielded() async {
        let connection = self
        await Task { try? await connection.close() }.value
    }
}
