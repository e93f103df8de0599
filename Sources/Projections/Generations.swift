import EventStore
import Foundation
import Logging
import PostgresNIO

/// Creating and publishing a projection's generations. `create` and `publish` run inside the
/// caller's transaction, with the projection's row in `projections` locked (`read(_:lock:…)`);
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
            let live = try await read(projection.name, lock: .update, on: connection, logger: logger).live
            let exists =
                try await connection.query(
                    "SELECT to_regnamespace(\(projection.schema(generation: live))) IS NOT NULL",
                    logger: logger
                ).decode(Bool.self).first { _ in true } ?? false
            if !exists {
                try await create(projection, generation: live, on: connection, logger: logger)
                try await publish(projection, generation: live, on: connection, logger: logger)
            } else if !projection.isReactor {
                try await rebuildIfOutdated(projection, on: connection, logger: logger)
            } else {
                // A reactor is never rebuilt, so tables added to it since its generation was
                // created reach that generation here (its DDL is idempotent). Its views are
                // locked first, before its DDL locks their tables: a reader or writer through a
                // view (the webhook deliverer's UPDATE of `alert_webhooks`) locks the view, then
                // the table; taking them in the other order here deadlocked with it (40P01 at a
                // server's start, seen in the API suite).
                try await lockViews(of: projection, generation: live, on: connection, logger: logger)
                try await inSchema(projection.schema(generation: live), on: connection, logger: logger) {
                    try await projection.createTables(on: connection, logger: logger)
                }
                try await publish(projection, generation: live, on: connection, logger: logger)
            }
        }
    }

    /// Starts a rebuild when the live generation was built by an older version of the
    /// projection (``Projection/version``), unless a rebuild by this version is under way; a
    /// rebuild by an older version is started again. Inside the caller's transaction, the
    /// projection's row locked.
    private static func rebuildIfOutdated(
        _ projection: any Projection, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let (live, rebuild) = try await read(projection.name, lock: .update, on: connection, logger: logger)
        let rows = try await connection.query(
            """
            SELECT generation, projection_version FROM projection_checkpoints
            WHERE name = \(projection.name) AND generation = ANY(\([live, rebuild ?? live]))
            """,
            logger: logger)
        var versions: [Int32: Int32] = [:]
        for try await (generation, version) in rows.decode((Int32, Int32).self) { versions[generation] = version }
        guard let built = versions[live], built < projection.version else {
            if let built = versions[live], built > projection.version {
                logger.warning(
                    "the live generation was built by a newer version of the projection than this code",
                    metadata: [
                        "projection": "\(projection.name)", "built_by": "\(built)", "code": "\(projection.version)",
                    ])
            }
            return
        }
        if let rebuild, versions[rebuild] == projection.version { return }
        let next = max(live, rebuild ?? live) + 1
        logger.notice(
            "read model built by an older version of its projection: rebuilding it (the old one serves meanwhile)",
            metadata: [
                "projection": "\(projection.name)", "built_by": "\(built)", "code": "\(projection.version)",
                "generation": "\(next)",
            ])
        try await restartRebuild(projection, live: live, rebuild: rebuild, on: connection, logger: logger)
    }

    /// Drops the rebuild under way (if any) and begins a new one from the start of the log.
    /// Inside the caller's transaction, the projection's row locked. Returns its generation.
    @discardableResult
    static func restartRebuild(
        _ projection: any Projection, live: Int32, rebuild: Int32?, on connection: PostgresConnection, logger: Logger
    ) async throws -> Int32 {
        if let rebuild {
            try await connection.query(
                "DROP SCHEMA IF EXISTS \(unescaped: projection.schema(generation: rebuild)) CASCADE", logger: logger)
            try await connection.query(
                "DELETE FROM projection_checkpoints WHERE name = \(projection.name) AND generation = \(rebuild)",
                logger: logger)
        }
        let next = max(live, rebuild ?? live) + 1
        try await beginRebuild(projection, generation: next, on: connection, logger: logger)
        return next
    }

    /// Creates generation `generation` for a rebuild (its indexes deferred) and marks it as the
    /// one being rebuilt. Inside the caller's transaction, the projection's row locked.
    static func beginRebuild(
        _ projection: any Projection, generation: Int32, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await create(projection, generation: generation, deferringIndexes: true, on: connection, logger: logger)
        try await connection.query(
            """
            UPDATE projections SET rebuild_generation = \(generation), rebuild_requested_at = now()
            WHERE name = \(projection.name)
            """,
            logger: logger)
    }

    /// How ``read(_:lock:on:logger:)`` locks the projection's row.
    enum RowLock: String {
        case none = ""
        /// For a batch that only needs the generations not to change under it.
        case share = "FOR SHARE"
        /// For changing the generations.
        case update = "FOR UPDATE"
    }

    /// The projection's generations, its row locked as asked.
    ///
    /// `settings` are set for the rest of the transaction (`SET LOCAL`) by the same statement:
    /// a runner's batch begins with this read, and each setting sent on its own was a round trip
    /// of every batch of every runner.
    static func read(
        _ name: String, lock: RowLock, settings: [BatchSetting] = [], on connection: PostgresConnection,
        logger: Logger
    )
        async throws -> (live: Int32, rebuild: Int32?)
    {
        var query: PostgresQuery = "SELECT live_generation, rebuild_generation"
        for setting in settings {
            query.sql += ", set_config('\(setting.name)', $\(query.binds.count + 1), true)"
            query.binds.append(setting.value)
        }
        query.sql += " FROM projections WHERE name = $\(query.binds.count + 1) \(lock.rawValue)"
        query.binds.append(name)
        let rows = try await connection.preparedQuery(query, logger: logger)
        for try await row in rows.decode((Int32, Int32?).self) { return row }
        throw ProjectionError.unknown(name)
    }

    /// A setting for the rest of a batch's transaction, see ``read(_:lock:settings:on:logger:)``.
    struct BatchSetting: Sendable {
        var name: String
        var value: String

        /// The batch commits without waiting for the WAL flush (see ``ProjectionRunner``).
        static let noFlushWait = BatchSetting(name: "synchronous_commit", value: "off")

        /// Unqualified names mean the generation's tables first, as ``inSchema(_:on:logger:_:)``.
        static func searchPath(_ schema: String) -> BatchSetting {
            BatchSetting(name: "search_path", value: "\(schema), public")
        }
    }

    /// Creates generation `generation`: its schema, its tables, its checkpoint at the start.
    ///
    /// `deferringIndexes` (a rebuild's generation, which serves nothing until it is swapped in):
    /// its non-unique indexes are dropped and their definitions kept with its checkpoint, for
    /// ``createDeferredIndexes(_:generation:on:logger:)`` after the bulk load. Building an index
    /// once over the loaded rows costs a fraction of keeping it up to date row by row.
    static func create(
        _ projection: any Projection,
        generation: Int32,
        deferringIndexes: Bool = false,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let schema = projection.schema(generation: generation)
        try await connection.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE", logger: logger)
        try await connection.query("CREATE SCHEMA \(unescaped: schema)", logger: logger)
        try await inSchema(schema, on: connection, logger: logger) {
            try await projection.createTables(on: connection, logger: logger)
        }
        var deferred: [String] = []
        if deferringIndexes {
            let rows = try await connection.query(
                """
                SELECT c.relname::text, pg_get_indexdef(i.indexrelid)
                FROM pg_index i
                JOIN pg_class c ON c.oid = i.indexrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = \(schema) AND NOT i.indisunique
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
                ORDER BY c.relname
                """,
                logger: logger)
            for try await (index, definition) in rows.decode((String, String).self) {
                try await connection.query("DROP INDEX \(unescaped: schema).\(unescaped: index)", logger: logger)
                deferred.append(definition)
            }
        }
        try await connection.query(
            """
            INSERT INTO projection_checkpoints (name, generation, deferred_indexes, projection_version)
            VALUES (\(projection.name), \(generation), \(deferred)::text[], \(projection.version))
            ON CONFLICT (name, generation) DO UPDATE
            SET checkpoint_tx = '0', checkpoint_position = 0, events_applied = 0, created_at = now(),
                updated_at = now(), last_event_at = NULL, last_error = NULL, last_error_at = NULL,
                deferred_indexes = excluded.deferred_indexes, projection_version = excluded.projection_version
            """,
            logger: logger
        )
        try await connection.query(
            "DELETE FROM projection_parked_events WHERE name = \(projection.name) AND generation = \(generation)",
            logger: logger
        )
    }

    /// Creates the indexes ``create(_:generation:deferringIndexes:on:logger:)`` left out of a
    /// generation, in one transaction (all or none, so a runner that dies meanwhile finds them
    /// all still to do).
    static func createDeferredIndexes(
        _ projection: any Projection, generation: Int32, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.inTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT deferred_indexes FROM projection_checkpoints
                WHERE name = \(projection.name) AND generation = \(generation)
                FOR UPDATE
                """,
                logger: logger)
            let definitions = try await rows.decode([String].self).reduce(into: [String]()) { $0 += $1 }
            guard !definitions.isEmpty else { return }
            // Each sort in memory where it fits (the default, 64 MB, spills the larger ones).
            try await connection.query("SET LOCAL maintenance_work_mem = '256MB'", logger: logger)
            for definition in definitions {
                try await connection.query(PostgresQuery(unsafeSQL: definition), logger: logger)
            }
            try await connection.query(
                """
                UPDATE projection_checkpoints SET deferred_indexes = '{}'
                WHERE name = \(projection.name) AND generation = \(generation)
                """,
                logger: logger)
        }
    }

    /// `VACUUM (ANALYZE)` of a generation's tables (outside any transaction).
    static func vacuum(
        _ projection: any Projection, generation: Int32, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let schema = projection.schema(generation: generation)
        for table in try await tables(in: schema, on: connection, logger: logger) {
            try await connection.query("VACUUM (ANALYZE) \(unescaped: schema).\(unescaped: table)", logger: logger)
        }
    }

    static func tables(in schema: String, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        try await connection.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = \(schema) ORDER BY tablename",
            logger: logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
    }

    /// Locks (`ACCESS EXCLUSIVE`, in name order) the views `public.<table>` of `generation`'s
    /// tables that exist, for ``publish(_:generation:on:logger:)`` to replace them later in the
    /// transaction.
    static func lockViews(
        of projection: any Projection, generation: Int32, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let views = try await connection.query(
            """
            SELECT v.viewname::text FROM pg_tables t JOIN pg_views v ON v.viewname = t.tablename
            WHERE t.schemaname = \(projection.schema(generation: generation)) AND v.schemaname = 'public'
            ORDER BY v.viewname
            """,
            logger: logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
        guard !views.isEmpty else { return }
        let list = views.map { "public.\($0)" }.joined(separator: ", ")
        try await connection.query("LOCK TABLE \(unescaped: list) IN ACCESS EXCLUSIVE MODE", logger: logger)
    }

    /// Points the views `public.<table>` at `generation`'s tables.
    static func publish(
        _ projection: any Projection,
        generation: Int32,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let schema = projection.schema(generation: generation)
        for table in try await tables(in: schema, on: connection, logger: logger) {
            try await connection.query("DROP VIEW IF EXISTS public.\(unescaped: table)", logger: logger)
            try await connection.query(
                "CREATE VIEW public.\(unescaped: table) AS SELECT * FROM \(unescaped: schema).\(unescaped: table)",
                logger: logger
            )
        }
    }

    /// Runs `body` with `search_path` set to a generation's schema (then `public`), and back to
    /// `public` after it (inside the caller's transaction).
    static func inSchema(
        _ schema: String,
        on connection: PostgresConnection,
        logger: Logger,
        _ body: () async throws -> Void
    ) async throws {
        try await connection.query("SET LOCAL search_path TO \(unescaped: schema), public", logger: logger)
        try await body()
        try await connection.query("SET LOCAL search_path TO public", logger: logger)
    }
}

extension EventStore {
    /// Asks for `name` to be rebuilt from the start of the log into a new generation, while the
    /// live one keeps serving; the projection's runner does the work and swaps it in when it has
    /// caught up. Returns the generation being built: the same one if a rebuild is under way,
    /// unless `restart` (one begun before the log lost events to retention may have applied
    /// them: it is dropped and a new one begins).
    @discardableResult
    public func requestRebuild(of projection: any Projection, restart: Bool = false) async throws -> Int32 {
        guard !projection.isReactor else { throw ProjectionError.reactorNotRebuildable(projection.name) }
        return try await client.withOpenConnection { [logger] connection in
            try await Generations.ensureRegistered(projection, on: connection, logger: logger)
            return try await connection.inTransaction(logger: logger) { connection in
                let (live, rebuild) = try await Generations.read(
                    projection.name, lock: .update, on: connection, logger: logger)
                if let rebuild, !restart { return rebuild }
                return try await Generations.restartRebuild(
                    projection, live: live, rebuild: rebuild, on: connection, logger: logger)
            }
        }
    }

    /// Registers `projections` and creates their first generation where none exists yet, so
    /// their views answer (empty) before a runner has applied anything.
    public func registerProjections(_ projections: [any Projection]) async throws {
        try await client.withOpenConnection { [logger] connection in
            for projection in projections {
                try await Generations.ensureRegistered(projection, on: connection, logger: logger)
            }
        }
    }
}
