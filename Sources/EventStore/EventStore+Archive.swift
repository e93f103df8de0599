import Foundation
import Logging
import PostgresNIO

/// What an export reads: the log up to ``through``, optionally only a time range of it.
public struct LogExportSnapshot: Sendable, Equatable {
    /// The store's head when the export began: every event up to it has committed.
    public var through: Checkpoint
    public var events: Int
    /// Stretches of the exported events, in log order, whose positions ascend (see
    /// ``EventStore/importLog(runs:sequences:_:)``).
    public var runs: Int
    /// The values of the store's id sequences (``IDSequence/all``), by name.
    public var sequences: [String: Int64]
}

/// Why an import was refused.
public struct LogImportError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

extension EventStore {
    /// Reads the log up to its head, or the events of it recorded in `[from, to)`, in log order,
    /// in one `REPEATABLE READ` snapshot through a server-side cursor: one consistent prefix of
    /// the log even while writers go on, in constant memory.
    ///
    /// `begin` is told what will be read before the first page; `page` gets each page as JSON
    /// lines (without newlines) that PostgreSQL renders, keys in this order, `position` always
    /// first: `{"position":…,"event_id":…,"stream":…,"version":…,"type":…,"schema_version":…,
    /// "recorded_at":…,"data":{…},"metadata":{…}}`, `recorded_at` with the API's microseconds and
    /// `data` and `metadata` exactly as stored.
    public func exportLog(
        from: Date? = nil, to: Date? = nil, pageSize: Int = 2000,
        begin: (LogExportSnapshot) throws -> Void,
        page: ([String]) throws -> Void
    ) async throws -> LogExportSnapshot {
        let through = try await head()
        var conditions = ["(e.tx_id, e.position) <= ('\(through.transactionID)'::xid8, \(through.position))"]
        var binds = PostgresBindings()
        if let from {
            binds.append(from)
            conditions.append("e.recorded_at >= $\(binds.count)")
        }
        if let to {
            binds.append(to)
            conditions.append("e.recorded_at < $\(binds.count)")
        }
        let range = "FROM events e WHERE " + conditions.joined(separator: " AND ")
        return try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                try await connection.guardedQuery(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                var snapshot = LogExportSnapshot(through: through, events: 0, runs: 0, sequences: [:])
                let counts = try await connection.guardedQuery(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT count(*), count(*) FILTER (WHERE previous IS NULL OR position < previous)
                            FROM (SELECT e.position, lag(e.position) OVER (ORDER BY e.tx_id, e.position) AS previous
                                  \(range)) AS exported
                            """, binds: binds),
                    logger: logger)
                for try await (events, runs) in counts.decode((Int64, Int64).self) {
                    snapshot.events = Int(events)
                    snapshot.runs = Int(runs)
                }
                snapshot.sequences = try await Self.sequenceValues(on: connection, logger: logger)
                try begin(snapshot)

                try await connection.guardedQuery(
                    PostgresQuery(
                        unsafeSQL: """
                            DECLARE vigil_export NO SCROLL CURSOR FOR
                            SELECT \(Self.exportLine) \(range)
                            ORDER BY e.tx_id, e.position
                            """, binds: binds),
                    logger: logger)
                let read = try await Self.fetchExport(pageSize: pageSize, on: connection, logger: logger, page)
                guard read == snapshot.events else {
                    throw LogImportError("the export read \(read) events, but counted \(snapshot.events)")
                }
                return snapshot
            }
        }
    }

    /// An event as an export line (see ``exportLog(from:to:pageSize:begin:page:)``), of `events e`.
    public static var exportLineSQL: String { exportLine }
    static let exportLine = """
        '{"position":' || e.position || ',"event_id":"' || e.event_id
            || '","stream":' || to_json(e.stream)::text || ',"version":' || e.version
            || ',"type":' || to_json(e.type)::text || ',"schema_version":' || e.schema_version
            || ',"recorded_at":"' || vigil_ts(e.recorded_at) || '","data":' || e.data::text
            || ',"metadata":' || e.metadata::text || '}'
        """

    /// Reads the open cursor `vigil_export` to its end, `pageSize` lines at a time, into `page`;
    /// returns how many it read.
    static func fetchExport(
        pageSize: Int, on connection: PostgresConnection, logger: Logger, _ page: ([String]) throws -> Void
    ) async throws -> Int {
        var read = 0
        while true {
            let rows = try await connection.guardedQuery(
                "FETCH \(unescaped: String(max(1, pageSize))) FROM vigil_export", logger: logger)
            let lines = try await rows.decode(String.self).reduce(into: [String]()) { $0.append($1) }
            if !lines.isEmpty { try page(lines) }
            read += lines.count
            if lines.count < max(1, pageSize) { return read }
        }
    }

    /// Imports events into an empty store, in one transaction: `body` stores them a batch at a
    /// time through the ``LogImport`` it is given, in log order; when it throws, nothing is stored.
    ///
    /// Every event keeps its id, stream, version, type, payload, recording time and position, and
    /// the log its order. Transaction ids can't be kept (a new cluster's are lower than the old
    /// one's), so each run (a stretch of ascending positions, `runs` of them) is stored under a
    /// transaction id of its own, taken before the import begins (one committed, empty
    /// transaction each): they ascend, lie below the import's own transaction and every later
    /// writer's, and so keep the order `(transaction, position)`. Afterwards the streams' versions,
    /// the position identity and the id sequences (at least `sequences`) are past everything
    /// imported.
    public func importLog(
        runs: Int, sequences: [String: Int64], _ body: (LogImport) async throws -> Void
    ) async throws {
        try await refuseImportUnlessEmpty()
        let transactions = try await client.withConnection { connection in
            var ids: [String] = []
            for _ in 0..<max(0, runs) {
                let rows = try await connection.guardedQuery("SELECT pg_current_xact_id()::text", logger: logger)
                for try await id in rows.decode(String.self) { ids.append(id) }
            }
            return ids
        }
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                // Writers wait until the import has committed (or find the log no longer empty).
                try await connection.guardedQuery("LOCK TABLE events, streams IN EXCLUSIVE MODE", logger: logger)
                try await refuseImportUnlessEmpty(on: connection)
                try await body(LogImport(connection: connection, transactions: transactions, logger: logger))
                try await Self.finishImport(sequences: sequences, on: connection, logger: logger)
            }
        }
    }

    /// The streams' versions, and the sequences past every id and position imported.
    static func finishImport(
        sequences: [String: Int64], on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        try await connection.guardedQuery(
            """
            INSERT INTO streams AS s (stream, version, last_tx)
            SELECT DISTINCT ON (e.stream) e.stream, e.version, e.tx_id FROM events e ORDER BY e.stream, e.version DESC
            ON CONFLICT (stream) DO UPDATE SET version = excluded.version, last_tx = excluded.last_tx
            """,
            logger: logger)
        try await connection.guardedQuery(
            """
            SELECT setval(pg_get_serial_sequence('events', 'position'), max(position)) FROM events
            HAVING max(position) IS NOT NULL
            """,
            logger: logger)
        for sequence in IDSequence.all {
            guard let value = sequences[sequence.name], value > 0 else { continue }
            try await connection.guardedQuery(
                """
                SELECT setval(\(sequence.name)::regclass, greatest(\(value)::int8, coalesce(last_value, 0)))
                FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = \(sequence.name)
                """,
                logger: logger)
        }
    }

    static func sequenceValues(on connection: PostgresConnection, logger: Logger) async throws -> [String: Int64] {
        let rows = try await connection.guardedQuery(
            """
            SELECT sequencename::text, coalesce(last_value, 0) FROM pg_sequences
            WHERE schemaname = current_schema() AND sequencename = ANY(\(IDSequence.all.map(\.name))::text[])
            """,
            logger: logger)
        var values: [String: Int64] = [:]
        for try await (name, value) in rows.decode((String, Int64).self) { values[name] = value }
        return values
    }

    func refuseImportUnlessEmpty(on connection: PostgresConnection? = nil) async throws {
        let sql: PostgresQuery = "SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1000) AS e"
        let rows = try await client.guardedQuery(sql, on: connection, logger: logger)
        let count = try await rows.decode(Int64.self).reduce(0) { $0 + $1 }
        guard count == 0 else {
            throw LogImportError(
                "the store already holds \(count == 1000 ? "1,000 or more" : String(count)) events: "
                    + "an archive is imported into an empty store (a new database, migrated)")
        }
    }
}

/// Stores an import's events, inside its transaction (``EventStore/importLog(runs:sequences:_:)``).
public struct LogImport: Sendable {
    let connection: PostgresConnection
    /// Each run's transaction id, in order.
    let transactions: [String]
    let logger: Logger

    /// How many runs the import may hold.
    public var runs: Int { transactions.count }

    /// Stores events given as JSON lines in the form ``EventStore/exportLog(from:to:pageSize:begin:page:)``
    /// writes, each with its position and its run (0-based, ascending). PostgreSQL parses the
    /// lines: a line that is not JSON, or an event without one of its fields, is refused with
    /// what is wrong (and the caller's import with it).
    public func store(lines: [String], positions: [Int64], runs: [Int]) async throws {
        guard !lines.isEmpty else { return }
        precondition(lines.count == positions.count && lines.count == runs.count)
        let transactionIDs = try runs.map { run in
            guard transactions.indices.contains(run) else {
                throw LogImportError("run \(run + 1) of \(transactions.count): more runs than announced")
            }
            return transactions[run]
        }
        let stored: Int64
        do {
            let rows = try await connection.guardedQuery(
                """
                WITH stored AS (
                    INSERT INTO events (position, tx_id, event_id, stream, version, type, schema_version,
                                        data, metadata, recorded_at)
                    OVERRIDING SYSTEM VALUE
                    SELECT u.position, u.tx::xid8, (l->>'event_id')::uuid, l->>'stream', (l->>'version')::int8,
                           l->>'type', (l->>'schema_version')::int4, l->'data', l->'metadata',
                           (l->>'recorded_at')::timestamptz
                    -- Each line parsed once, by the array cast (a `line::jsonb` in a lateral
                    -- subquery would be inlined into every reference and parsed 17 times).
                    FROM unnest(\(lines)::text[]::jsonb[], \(positions)::int8[], \(transactionIDs)::text[])
                             AS u(l, position, tx)
                    WHERE jsonb_typeof(l->'event_id') = 'string' AND jsonb_typeof(l->'stream') = 'string'
                      AND jsonb_typeof(l->'version') = 'number' AND jsonb_typeof(l->'type') = 'string'
                      AND jsonb_typeof(l->'schema_version') = 'number'
                      AND jsonb_typeof(l->'recorded_at') = 'string'
                      AND jsonb_typeof(l->'data') = 'object' AND jsonb_typeof(l->'metadata') = 'object'
                    RETURNING 1)
                SELECT count(*) FROM stored
                """,
                logger: logger)
            stored = try await rows.decode(Int64.self).reduce(0) { $0 + $1 }
        } catch let error as PSQLError {
            throw LogImportError(
                "could not be stored: " + (error.serverInfo?[.message] ?? String(reflecting: error)))
        }
        guard stored == lines.count else {
            throw LogImportError(
                "\(lines.count - Int(stored)) of them are not whole events (each needs event_id, stream, version, "
                    + "type, schema_version, recorded_at, and data and metadata objects)")
        }
    }
}
