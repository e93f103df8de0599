import Logging
import PostgresNIO

extension PostgresSettings {
    /// Runs `body` with a connection pool that runs for exactly as long (one-off commands).
    ///
    /// Throws ``DatabaseUnreachable`` at once when PostgreSQL can't be reached (see there why the
    /// pool can't say so itself).
    public func withRunningClient<Value: Sendable>(
        logger: Logger,
        _ body: @Sendable (PostgresClient) async throws -> Value
    ) async throws -> Value {
        try await checkReachable(logger: logger)
        // A one-off pool may be asked for a connection a moment before `run()` starts, which
        // PostgresNIO reports as a warning; real failures still reach the caller as errors.
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: background)
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            group.addTask {
                await PoolKick(client: client).run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
