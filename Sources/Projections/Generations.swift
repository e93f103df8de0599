import EventStore
import Foundation
import Logging
import PostgresNIO

/// Creating and publishing a projection's generations. `create` and `publish` run inside the
/// caller's transaction, with the projection's row in `projections` locked (`lockRow`);
/// `ensureRegistered` opens a transaction of its own.
enum Generations {
    /// Registers the projection and, the first time, creates and publishes generation 1.
    static func ensureRegistered(
        _ projection: any Projection, on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        guard projection.name.range(of: "^[a-z][a-z0-9_]{0,39}$", options: .regularExpression) != nil else {
            throw ProjectionError.invalidName(projection.name)
        }
        try await connection.inTransaction(logger: logger) { connection in
            try await connection.query(
                "INSERT INTO projections (name) VALUES (\(projection.name)) ON CONFLICT (name) DO NOTHING",
                logger: logger
            )
            let live = try await lockRow(projection.name, on: connection, logger: logger).live
            let exists =
                try await connection.query(
                    "SELECT to_regnamespace(\(projection.schema(generation: live))) IS NOT NULL",
                    logger: logger
                ).decode(Bool.self).first { _ in true } ?? false
            if !exists {
                try await create(projection, generation: live, on: connection, logger: logger)
                try await publish(projection, generation: live, on: connection, logger: logger)
            }
        }
    }

    /// Locks the projection's row (`FOR UPDATE`, or `FOR SHARE` for a batch that only needs the
    /// generations not to change under it) and returns its generations.
    static func lockRow(
        _ name: String, share: Bool = false, on connection: PostgresConnection, logger: Logger
    )
        async throws -> (live: Int32, rebuild: Int32?)
    {
        let rows = try await connection.query(
            """
            SELECT live_generation, rebuild_generation FROM projections WHERE name = \(name)
            \(unescaped: share ? "FOR SHARE" : "FOR UPDATE")
            """,
            logger: logger
        )
        for try await row in rows.decode((Int32, Int32?).self) { return row }
        throw ProjectionError.unknown(name)
    }

    /// Creates generation `generation`: its schema, its tables, its checkpoint at the start.
    static func create(
        _ projection: any Projection,
        generation: Int32,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let schema = projection.schema(generation: generation)
        try await connection.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE", logger: logger)
        try await connection.query("CREATE SCHEMA \(unescaped: schema)", logger: logger)
        try await useSchema(schema, on: connection, logger: logger)
        try await projection.createTables(on: connection, logger: logger)
        try await connection.query("SET LOCAL search_path TO public", logger: logger)
        try await connection.query(
            """
            INSERT INTO projection_checkpoints (name, generation) VALUES (\(projection.name), \(generation))
            ON CONFLICT (name, generation) DO UPDATE
            SET checkpoint_tx = '0', checkpoint_position = 0, events_applied = 0, created_at = now(),
                updated_at = now(), last_event_at = NULL, last_error = NULL, last_error_at = NULL
            """,
            logger: logger
        )
    }

    /// Points the views `public.<table>` at `generation`'s tables.
    static func publish(
        _ projection: any Projection,
        generation: Int32,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let schema = projection.schema(generation: generation)
        let tables = try await connection.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = \(schema) ORDER BY tablename",
            logger: logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
        for table in tables {
            try await connection.query("DROP VIEW IF EXISTS public.\(unescaped: table)", logger: logger)
            try await connection.query(
                "CREATE VIEW public.\(unescaped: table) AS SELECT * FROM \(unescaped: schema).\(unescaped: table)",
                logger: logger
            )
        }
    }

    /// `SET LOCAL search_path` to a generation's schema (then `public`), for the transaction.
    static func useSchema(_ schema: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SET LOCAL search_path TO \(unescaped: schema), public", logger: logger)
    }
}

extension EventStore {
    /// Asks for `name` to be rebuilt from the start of the log into a new generation, while the
    /// live one keeps serving; the projection's runner does the work and swaps it in when it has
    /// caught up. Returns the generation being built (the same one if a rebuild is under way).
    @discardableResult
    public func requestRebuild(of projection: any Projection) async throws -> Int32 {
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                let (live, rebuild) = try await Generations.lockRow(projection.name, on: connection, logger: logger)
                if let rebuild { return rebuild }
                let next = live + 1
                try await Generations.create(projection, generation: next, on: connection, logger: logger)
                try await connection.query(
                    """
                    UPDATE projections SET rebuild_generation = \(next), rebuild_requested_at = now()
                    WHERE name = \(projection.name)
                    """,
                    logger: logger
                )
                return next
            }
        }
    }
}
