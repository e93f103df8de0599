import EventStore
import Foundation
import Logging
import PostgresNIO

/// Reads an archive (``LogArchive``) into an empty store, streaming, in one transaction: a
/// damaged, cut or foreign file is refused with what is wrong, and nothing of it is stored.
///
/// Every event keeps its id, stream, version, type, payload, recording time and position, and
/// the log keeps its order. Its transaction ids can't be kept: a new cluster's are lower than
/// the old one's. So each run of the archive (a stretch of ascending positions) is stored with
/// a transaction id of its own, taken (one committed, empty transaction each) before the import
/// begins: they ascend, lie below the import's own transaction and every later writer's, and
/// keep the archive's order `(transaction, position)`. Read models then rebuild from the
/// imported log exactly as they were built from the original.
///
/// Checkpoint tokens of the old store mean nothing in the new one (their transaction ids are
/// beyond its horizon, and a read after one is refused).
public struct LogImporter: Sendable {
    public var store: EventStore
    /// Events per statement.
    public var batchSize = 1000

    public init(store: EventStore) { self.store = store }

    public struct Summary: Sendable, Equatable {
        public var header: LogArchive.Header
        public var events: Int
        public var runs: Int
    }

    /// Imports the archive at `path`. `progress` is told the bytes of the file read so far and
    /// its size.
    public func importArchive(
        from path: String, progress: @Sendable (_ read: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> Summary {
        let logger = store.logger
        let reader = try LZ4FrameReader(path: path)
        var lines = LineReader { try reader.next() }
        guard let first = try lines.next(), let header = LogArchive.decodeLine(LogArchive.Header.self, first),
            header.format == LogArchive.format
        else {
            throw LogArchiveError("\(path) is not a Vigil log archive: its first line is not a vigil-log header")
        }
        guard header.formatVersion == LogArchive.formatVersion else {
            throw LogArchiveError(
                "\(path) is a vigil-log archive of format version \(header.formatVersion); "
                    + "this Vigil reads version \(LogArchive.formatVersion)")
        }
        try await refuseUnlessEmpty()
        let transactions = try await takeTransactionIDs(header.runs)

        return try await store.client.withConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                // Writers wait until the import has committed (or find the log no longer empty).
                try await connection.query("LOCK TABLE events, streams IN EXCLUSIVE MODE", logger: logger)
                try await refuseUnlessEmpty(on: connection)

                var batch = Batch()
                var events = 0
                var runs = 0
                var previous: Int64?
                var trailer: LogArchive.Trailer?
                while let line = try lines.next() {
                    guard trailer == nil else {
                        throw LogArchiveError("\(path) goes on after its trailer line")
                    }
                    guard let position = LogArchive.position(of: line) else {
                        guard let end = LogArchive.decodeLine(LogArchive.Trailer.self, line),
                            end.end == LogArchive.format
                        else {
                            throw LogArchiveError("line \(events + 2) of \(path) is neither an event nor the trailer")
                        }
                        trailer = end
                        continue
                    }
                    if previous.map({ position <= $0 }) ?? true {
                        guard previous.map({ position < $0 }) ?? true else {
                            throw LogArchiveError("line \(events + 2) of \(path) repeats position \(position)")
                        }
                        guard runs < transactions.count else {
                            throw LogArchiveError(
                                "\(path) has more runs of ascending positions than its header's \(header.runs)")
                        }
                        runs += 1
                    }
                    previous = position
                    batch.append(line: line, position: position, transaction: transactions[runs - 1])
                    events += 1
                    if batch.count >= batchSize {
                        try await batch.store(on: connection, firstLine: events - batch.count + 2, logger: logger)
                        progress(reader.fileBytesRead, reader.fileSize)
                    }
                }
                try await batch.store(on: connection, firstLine: events - batch.count + 2, logger: logger)
                guard let trailer else {
                    throw LogArchiveError("\(path) is cut off: it has no trailer line")
                }
                guard trailer.events == events, header.events == events else {
                    throw LogArchiveError(
                        "\(path) holds \(events) events, but its header says \(header.events) and its trailer "
                            + "\(trailer.events)")
                }
                try await Self.finish(header, on: connection, logger: logger)
                progress(reader.fileBytesRead, reader.fileSize)
                return Summary(header: header, events: events, runs: runs)
            }
        }
    }

    /// The events of one statement.
    struct Batch {
        var lines: [String] = []
        var positions: [Int64] = []
        var transactions: [String] = []

        var count: Int { lines.count }

        mutating func append(line: ArraySlice<UInt8>, position: Int64, transaction: String) {
            lines.append(String(decoding: line, as: UTF8.self))
            positions.append(position)
            transactions.append(transaction)
        }

        /// Inserts the batch with its positions and transaction ids. PostgreSQL parses the lines:
        /// a line that is not JSON, or an event without one of its fields, refuses the import.
        mutating func store(on connection: PostgresConnection, firstLine: Int, logger: Logger) async throws {
            guard !lines.isEmpty else { return }
            defer {
                lines.removeAll(keepingCapacity: true)
                positions.removeAll(keepingCapacity: true)
                transactions.removeAll(keepingCapacity: true)
            }
            let stored: Int64
            do {
                let rows = try await connection.query(
                    """
                    WITH stored AS (
                        INSERT INTO events (position, tx_id, event_id, stream, version, type, schema_version,
                                            data, metadata, recorded_at)
                        OVERRIDING SYSTEM VALUE
                        SELECT u.position, u.tx::xid8, (l->>'event_id')::uuid, l->>'stream', (l->>'version')::int8,
                               l->>'type', (l->>'schema_version')::int4, l->'data', l->'metadata',
                               (l->>'recorded_at')::timestamptz
                        FROM unnest(\(lines)::text[], \(positions)::int8[], \(transactions)::text[])
                                 AS u(line, position, tx)
                        CROSS JOIN LATERAL (SELECT u.line::jsonb AS l) AS parsed
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
                throw LogArchiveError(
                    "lines \(firstLine)–\(firstLine + lines.count - 1) could not be stored: "
                        + (error.serverInfo?[.message] ?? String(reflecting: error)))
            }
            guard stored == lines.count else {
                throw LogArchiveError(
                    "lines \(firstLine)–\(firstLine + lines.count - 1): \(lines.count - Int(stored)) of them "
                        + "are not whole events (each needs event_id, stream, version, type, schema_version, "
                        + "recorded_at, and data and metadata objects)")
            }
        }
    }

    /// The streams' versions, and the sequences past every id and position the archive holds.
    static func finish(_ header: LogArchive.Header, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO streams AS s (stream, version, last_tx)
            SELECT DISTINCT ON (e.stream) e.stream, e.version, e.tx_id FROM events e ORDER BY e.stream, e.version DESC
            ON CONFLICT (stream) DO UPDATE SET version = excluded.version, last_tx = excluded.last_tx
            """,
            logger: logger)
        try await connection.query(
            """
            SELECT setval(pg_get_serial_sequence('events', 'position'), max(position)) FROM events
            HAVING max(position) IS NOT NULL
            """,
            logger: logger)
        for sequence in IDSequence.all {
            guard let value = header.sequences[sequence.name], value > 0 else { continue }
            try await connection.query(
                """
                SELECT setval(\(sequence.name)::regclass, greatest(\(value)::int8, coalesce(last_value, 0)))
                FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = \(sequence.name)
                """,
                logger: logger)
        }
    }

    func refuseUnlessEmpty(on connection: PostgresConnection? = nil) async throws {
        let sql: PostgresQuery = "SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1000) AS e"
        let rows =
            if let connection {
                try await connection.query(sql, logger: store.logger)
            } else {
                try await store.client.query(sql, logger: store.logger)
            }
        let count = try await rows.decode(Int64.self).reduce(0) { $0 + $1 }
        guard count == 0 else {
            throw LogArchiveError(
                "the store already holds \(count == 1000 ? "1,000 or more" : String(count)) events: "
                    + "an archive is imported into an empty store (a new database, migrated)")
        }
    }

    /// `count` transaction ids, ascending, each of a committed transaction that wrote nothing.
    func takeTransactionIDs(_ count: Int) async throws -> [String] {
        guard count > 0 else { return [] }
        return try await store.client.withConnection { connection in
            var ids: [String] = []
            ids.reserveCapacity(count)
            for _ in 0..<count {
                let rows = try await connection.query("SELECT pg_current_xact_id()::text", logger: store.logger)
                for try await id in rows.decode(String.self) { ids.append(id) }
            }
            return ids
        }
    }
}
