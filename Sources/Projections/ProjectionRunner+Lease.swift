import EventStore
import Logging
import PostgresNIO

/// Leases: a role runs holding a session-level advisory lock on the connection it writes
/// through, so one runner per projection and role runs in the cluster.
extension ProjectionRunner {
    /// Runs `body` holding the advisory lock `leaseName` on `connection` (waiting for it).
    func withLease(
        _ leaseName: String,
        on connection: PostgresConnection,
        _ body: () async throws -> Void
    ) async throws {
        let key = Self.leaseKey(leaseName)
        while !(try await tryLock(key, on: connection)) {
            try await Task.sleep(for: options.leaseRetry)
        }
        store.logger.debug("lease taken", metadata: ["lease": "\(leaseName)"])
        do {
            try await body()
            await release(key, on: connection)
        } catch {
            await release(key, on: connection)
            throw error
        }
    }

    /// Gives the lease back before the connection returns to the pool (a session-level lock
    /// would otherwise stay with the pooled connection). Runs even when this task is cancelled
    /// (in a task of its own, awaited); if the unlock fails, the connection is closed, which
    /// releases the lock too.
    private func release(_ key: Int64, on connection: PostgresConnection) async {
        await runOrClose("SELECT pg_advisory_unlock(\(key))", on: connection)
    }

    /// Runs `query` on `connection` even when this task is cancelled (in a task of its own,
    /// awaited); closes the connection if it fails: a session that can't be put back in order
    /// doesn't go back to the pool. A closed session has nothing to put back (and a query on it
    /// would never answer).
    func runOrClose(_ query: PostgresQuery, on connection: PostgresConnection) async {
        guard !connection.isClosed else { return }
        let logger = store.logger
        let done = await Task { (try? await connection.query(query, logger: logger)) != nil }.value
        if !done { try? await connection.close() }
    }

    private func tryLock(_ key: Int64, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: store.logger)
        for try await locked in rows.decode(Bool.self) { return locked }
        return false
    }

    /// The advisory-lock key of a lease: a stable 64-bit hash of its name.
    static func leaseKey(_ name: String) -> Int64 {
        Int64(bitPattern: fnv1a("vigil.projection.\(name)"))
    }
}

extension ProjectionRunner {
    /// Runs `body` with `connection`'s session marked as a read model's runner
    /// (``ReadHorizon/readModelApplication``), so the log's read horizon leaves its batches out;
    /// a reactor's (which appends events) is never marked. The mark goes before the connection
    /// returns to the pool, even when `body` throws or this task is cancelled; if it can't be
    /// taken off, the connection is closed.
    func marked(_ connection: PostgresConnection, _ body: () async throws -> Void) async throws {
        guard !projection.isReactor else { return try await body() }
        try await connection.query(
            "SET application_name = \(unescaped: "'" + ReadHorizon.readModelApplication + "'")", logger: store.logger)
        do {
            try await body()
        } catch {
            await unmark(connection)
            throw error
        }
        await unmark(connection)
    }

    private func unmark(_ connection: PostgresConnection) async {
        await runOrClose("RESET application_name", on: connection)
    }
}
