import EventStore
import Foundation
import Logging
import PostgresNIO

/// Throw-away databases on the configured server, for tests and benchmarks: each gets a
/// fresh, migrated database of its own and leaves nothing behind. Not part of the server,
/// which never creates or drops databases.
public enum ScratchDatabase {
    /// Creates `<prefix>_<random>`, applies the store's migrations, runs `body` with a running
    /// client for it, then drops it (unless `keep`).
    public static func with<Value: Sendable>(
        settings: PostgresSettings,
        prefix: String = "vigil_scratch",
        logger: Logger,
        keep: Bool = false,
        _ body: @Sendable (PostgresClient, PostgresSettings) async throws -> Value
    ) async throws -> Value {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        try await settings.withRunningClient(logger: logger) { admin in
            try await admin.query("CREATE DATABASE \(unescaped: name)", logger: logger)
            return ()
        }
        let scratch = settings.with(database: name)
        do {
            let value = try await scratch.withRunningClient(logger: logger) { client in
                try await Migrator.store().migrate(client: client, logger: logger)
                return try await body(client, scratch)
            }
            if !keep { try await drop(name, settings: settings, logger: logger) }
            return value
        } catch {
            try? await drop(name, settings: settings, logger: logger)
            throw error
        }
    }

    private static func drop(_ name: String, settings: PostgresSettings, logger: Logger) async throws {
        try await settings.withRunningClient(logger: logger) { admin in
            try await admin.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: logger)
            return ()
        }
    }
}
