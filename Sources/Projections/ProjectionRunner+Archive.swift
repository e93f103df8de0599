import Archive
import EventStore
import Foundation
import Logging
import PostgresNIO

/// Why a read model that keeps archived history can't be rebuilt: a segment is missing,
/// altered, or there is no archive folder to read it from. The rebuild stops there, with this
/// in `last_error`, rather than build a trail with a hole in it.
struct ArchiveReplayError: Error, CustomStringConvertible {
    var description: String
}

extension ProjectionRunner {
    /// Applies every archive segment this generation hasn't had yet, one transaction each,
    /// recording it in `projection_archive_replays` in the same transaction. For a projection
    /// that keeps archived history (``Projection/replaysArchive``), before its rebuild reads
    /// the table.
    ///
    /// The lines are turned into events by PostgreSQL (`jsonb` in, the columns out), so `data`
    /// and `metadata` are the text a read of the table gives.
    func replayArchive(into generation: Int32, on connection: PostgresConnection) async throws {
        guard projection.replaysArchive else { return }
        let logger = store.logger
        let name = projection.name
        let replayed = Set(
            try await connection.query(
                "SELECT segment FROM projection_archive_replays WHERE name = \(name) AND generation = \(generation)",
                logger: logger
            ).decode(String.self).reduce(into: [String]()) { $0.append($1) })
        let segments = try await store.archivedSegments().filter { !replayed.contains($0.name) }
        guard !segments.isEmpty else { return }
        guard let directory = options.archiveDirectory else {
            throw ArchiveReplayError(
                description: "\(name) keeps archived history and \(segments.count) segment(s) are recorded, "
                    + "but no archive folder is configured (VIGIL_ARCHIVE_DIR)")
        }
        for segment in segments {
            let path = (directory as NSString).appendingPathComponent(segment.name)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ArchiveReplayError(description: "archive segment \(path) is missing")
            }
            guard try RetentionArchive.sha256(of: path) == segment.sha256 else {
                throw ArchiveReplayError(description: "archive segment \(path) is not the one recorded (SHA-256)")
            }
            let reader = try LZ4FrameReader(path: path)
            var lines = LineReader { try reader.next() }
            _ = try lines.next()  // the header
            try await connection.inTransaction(logger: logger) { connection in
                var batch: [String] = []
                func flush() async throws {
                    guard !batch.isEmpty else { return }
                    let events = try await Self.events(fromLines: batch, on: connection, logger: logger)
                        .filter(projection.filter.takes)
                    batch.removeAll(keepingCapacity: true)
                    guard !events.isEmpty else { return }
                    try await Generations.inSchema(
                        projection.schema(generation: generation), on: connection, logger: logger
                    ) {
                        try await projection.apply(events, on: connection, logger: logger)
                    }
                }
                while let line = try lines.next() {
                    // The trailer ends the file; every other line is an event.
                    guard line.starts(with: Array(#"{"position":"#.utf8)) else { continue }
                    batch.append(String(decoding: line, as: UTF8.self))
                    if batch.count >= options.batchSize { try await flush() }
                }
                try await flush()
                try await connection.query(
                    """
                    INSERT INTO projection_archive_replays (name, generation, segment)
                    VALUES (\(name), \(generation), \(segment.name))
                    """, logger: logger)
            }
            logger.info(
                "archive segment replayed into a rebuild",
                metadata: ["projection": "\(name)", "generation": "\(generation)", "segment": "\(segment.name)"])
        }
    }

    /// Export lines as events (their transaction ids are gone: the checkpoint carries the
    /// position alone). Each line is cast to `jsonb` once, as an array (a cast in a `LATERAL`
    /// subquery is inlined into every reference: nine parses a line).
    static func events(
        fromLines lines: [String], on connection: PostgresConnection, logger: Logger
    ) async throws
        -> [RecordedEvent]
    {
        let rows = try await connection.query(
            """
            SELECT (j->>'position')::int8, (j->>'event_id')::uuid, j->>'stream', (j->>'version')::int8, j->>'type',
                   (j->>'schema_version')::int4, (j->'data')::text, (j->'metadata')::text,
                   (j->>'recorded_at')::timestamptz
            FROM unnest(\(lines)::text[]::jsonb[]) WITH ORDINALITY AS l(j, n)
            ORDER BY l.n
            """, logger: logger)
        var events: [RecordedEvent] = []
        for try await row in rows.decode((Int64, UUID, String, Int64, String, Int32, String, String, Date).self) {
            events.append(
                RecordedEvent(
                    checkpoint: Checkpoint(transactionText: "0", position: row.0), id: row.1, stream: row.2,
                    version: row.3, type: row.4, schemaVersion: row.5, data: row.6, metadata: row.7,
                    recordedAt: row.8))
        }
        return events
    }
}
