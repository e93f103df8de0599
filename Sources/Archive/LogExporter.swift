import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO

/// Writes the log, or the part of it recorded in a time range, to an archive file
/// (``LogArchive``), streaming: memory stays the same whatever the log's size.
///
/// It exports the log up to the store's head when it begins (``EventStore/head()``: every
/// event before it has committed, none can still join), read in one `REPEATABLE READ`
/// snapshot through a server-side cursor, so the file is one consistent prefix of the log even
/// while writers go on.
public struct LogExporter: Sendable {
    public var store: EventStore
    /// Events recorded at or after this time (nil: from the start).
    public var from: Date?
    /// Events recorded before this time (nil: to the head).
    public var to: Date?
    /// Events fetched per round trip.
    public var pageSize = 2000

    public init(store: EventStore, from: Date? = nil, to: Date? = nil) {
        self.store = store
        self.from = from
        self.to = to
    }

    public struct Summary: Sendable, Equatable {
        public var header: LogArchive.Header
        public var fileBytes: Int
        public var contentBytes: Int
    }

    /// Writes the archive to `path` (replacing a file there only once the new one is whole).
    /// `progress` is told the events written so far and the total.
    public func export(
        to path: String, progress: @Sendable (_ written: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> Summary {
        let logger = store.logger
        let through = try await store.head()
        let writer = try LZ4FrameWriter(path: path)
        return try await store.client.withConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                try await connection.query(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                let range = Self.range(through: through, from: from, to: to)
                var header = try await Self.header(connection, range: range, logger: logger)
                header.through = through.token
                header.from = from.map { Timestamp.format($0) }
                header.to = to.map { Timestamp.format($0) }
                try writer.write(try LogArchive.encodeLine(header))

                try await connection.query(
                    """
                    DECLARE vigil_export NO SCROLL CURSOR FOR
                    SELECT '{"position":' || e.position || ',"event_id":"' || e.event_id
                        || '","stream":' || to_json(e.stream)::text || ',"version":' || e.version
                        || ',"type":' || to_json(e.type)::text || ',"schema_version":' || e.schema_version
                        || ',"recorded_at":"' || vigil_ts(e.recorded_at) || '","data":' || e.data::text
                        || ',"metadata":' || e.metadata::text || '}'
                    FROM events e \(unescaped: range.sql)
                    ORDER BY e.tx_id, e.position
                    """,
                    logger: logger)
                var written = 0
                let newline = UInt8(ascii: "\n")
                while true {
                    let rows = try await connection.query(
                        "FETCH \(unescaped: String(pageSize)) FROM vigil_export", logger: logger)
                    var fetched = 0
                    for try await line in rows.decode(String.self) {
                        var line = line
                        try line.withUTF8 { try writer.write($0) }
                        try writer.write(CollectionOfOne(newline))
                        fetched += 1
                    }
                    written += fetched
                    progress(written, header.events)
                    if fetched < pageSize { break }
                }
                guard written == header.events else {
                    throw LogArchiveError("the export read \(written) events, but counted \(header.events)")
                }
                try writer.write(try LogArchive.encodeLine(LogArchive.Trailer(end: LogArchive.format, events: written)))
                try writer.finish()
                return Summary(header: header, fileBytes: writer.fileBytes, contentBytes: writer.contentBytes)
            }
        }
    }

    /// The `WHERE` clause of the exported events (inlined: values the store handed out).
    struct Range {
        var sql: String
    }

    static func range(through: Checkpoint, from: Date?, to: Date?) -> Range {
        var conditions = [
            "(e.tx_id, e.position) <= ('\(through.transactionID)'::xid8, \(through.position))",
            // Also a primary-key bound the planner can estimate (a row comparison alone it can't).
            "e.position <= (SELECT max(position) FROM events)",
        ]
        if let from { conditions.append("e.recorded_at >= '\(Timestamp.format(from))'::timestamptz") }
        if let to { conditions.append("e.recorded_at < '\(Timestamp.format(to))'::timestamptz") }
        return Range(sql: "WHERE " + conditions.joined(separator: " AND "))
    }

    /// Counts the exported events and runs, and reads the id sequences, in the export's snapshot.
    static func header(
        _ connection: PostgresConnection, range: Range, logger: Logger
    ) async throws
        -> LogArchive.Header
    {
        var events = 0
        var runs = 0
        let counts = try await connection.query(
            """
            SELECT count(*), count(*) FILTER (WHERE previous IS NULL OR position < previous)
            FROM (SELECT e.position, lag(e.position) OVER (ORDER BY e.tx_id, e.position) AS previous
                  FROM events e \(unescaped: range.sql)) AS exported
            """,
            logger: logger)
        for try await (count, runCount) in counts.decode((Int64, Int64).self) {
            events = Int(count)
            runs = Int(runCount)
        }
        var sequences: [String: Int64] = [:]
        for sequence in IDSequence.all {
            let rows = try await connection.query(
                """
                SELECT coalesce(last_value, 0) FROM pg_sequences
                WHERE schemaname = current_schema() AND sequencename = \(sequence.name)
                """,
                logger: logger)
            for try await value in rows.decode(Int64.self) { sequences[sequence.name] = value }
        }
        return LogArchive.Header(
            format: LogArchive.format, formatVersion: LogArchive.formatVersion,
            exportedAt: Timestamp.format(Date()), through: Checkpoint.start.token, from: nil, to: nil,
            events: events, runs: runs, sequences: sequences)
    }
}
