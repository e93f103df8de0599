import Foundation
import Logging
import PostgresNIO

/// What retention takes out of the hot table for a cutoff: the security events that started
/// before it, each whole (its stream, and the streams of the alerts raised on it), their
/// detections, and the detections older than it that no kept security event holds.
///
/// The unit is the security event because the read models apply its events together: a review
/// kept without the event it reviews, or an event without its detections, would be an event a
/// rebuild can't apply. A unit with an event beyond ``bound`` stays until the next run.
public struct RetentionPlan: Sendable, Equatable {
    public var cutoff: Date
    /// How far into the log retention reaches: the head, or the checkpoint of the slowest runner
    /// if one is behind it (an event the reactors have not seen is never taken from them).
    public var bound: Checkpoint
    public var securityEvents = 0
    public var alerts = 0
    public var detections = 0
    /// Every log event taken (those of the units' streams and the detections).
    public var logEvents: Int { positions.count }
    /// Their size in the table (`pg_column_size` of the rows).
    public var bytes: Int64 = 0
    /// Operational log records (`/api/logs`) older than the cutoff, deleted with them.
    public var operationalLogs = 0
    /// The streams archived whole (they take no more events afterwards), by name.
    public var streams: [String] = []
    /// The positions of the events taken, ascending.
    public var positions: [Int64] = []
    /// Stretches of them, in log order, whose positions ascend (an archive's `runs`).
    public var runs = 0
    /// The store's id sequences when the events were taken (a run that takes some): past every
    /// id they carry, so a segment imported into a new store moves its sequences past them.
    public var sequences: [String: Int64] = [:]

    public init(cutoff: Date, bound: Checkpoint) {
        self.cutoff = cutoff
        self.bound = bound
    }
}

/// A segment file retention wrote, as it is recorded with the delete.
public struct ArchivedSegment: Sendable, Equatable {
    public var name: String
    public var fileBytes: Int
    public var sha256: String

    public init(name: String, fileBytes: Int, sha256: String) {
        self.name = name
        self.fileBytes = fileBytes
        self.sha256 = sha256
    }
}

/// Another retention run holds the store's retention lock.
public struct RetentionBusy: Error, CustomStringConvertible {
    public var description: String { "a cleanup is already running" }
}

/// The log changed under a retention run (an archived stream got an event after the run read
/// it): nothing was deleted, and the run may be tried again.
public struct RetentionConflict: Error, CustomStringConvertible {
    public var description: String { "the log changed while the cleanup read it; nothing was removed, try again" }
}

extension EventStore {
    /// The advisory lock one retention run holds for its transaction.
    public static let retentionLock: Int64 = 0x5649_4749_4C52_4554  // "VIGILRET"

    /// What a retention run with `cutoff` would take now (a dry run): read in one snapshot,
    /// nothing written.
    public func planRetention(cutoff: Date) async throws -> RetentionPlan {
        let bound = try await retentionBound()
        let logger = logger
        return try await client.withOpenConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                try await connection.guardedQuery(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                return try await Self.plan(cutoff: cutoff, bound: bound, on: connection, logger: logger)
            }
        }
    }

    /// Archives and removes what ``planRetention(cutoff:)`` finds, in one `REPEATABLE READ`
    /// transaction: the events are read (in log order, as export lines, into `page`, after
    /// `begin` is told the plan) and `seal` makes the segment whole and durable; only then are
    /// they deleted, in the same transaction as the segment's record, the archived streams'
    /// marks, the deletion of old operational logs and `record` (the run's own event, with the
    /// segment). An archived stream that got an event since the snapshot fails the run with
    /// ``RetentionConflict`` before anything is deleted; the caller removes its segment then.
    /// With nothing to take, no segment is written (`begin`, `page` and `seal` are not called).
    /// `locked` runs first, once the run holds the store's retention lock (one run at a time,
    /// whichever instance): what it does to the archive folder no other run does meanwhile.
    public func archiveExpired(
        cutoff: Date, pageSize: Int = 2000,
        locked: () async throws -> Void = {},
        begin: (RetentionPlan) throws -> Void,
        page: ([String]) throws -> Void,
        seal: (RetentionPlan) async throws -> ArchivedSegment,
        record: (RetentionPlan, ArchivedSegment?) throws -> AppendRequest
    ) async throws -> (plan: RetentionPlan, segment: ArchivedSegment?) {
        let bound = try await retentionBound()
        return try await client.withConnection { connection in
            do {
                return try await connection.inTransaction(logger: logger) { connection in
                    try await connection.guardedQuery("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                    let isLocked = try await connection.guardedQuery(
                        "SELECT pg_try_advisory_xact_lock(\(Self.retentionLock))", logger: logger
                    ).decode(Bool.self).first { _ in true }
                    guard isLocked == true else { throw RetentionBusy() }
                    try await locked()
                    var plan = try await Self.plan(cutoff: cutoff, bound: bound, on: connection, logger: logger)
                    var segment: ArchivedSegment?
                    if !plan.positions.isEmpty {
                        plan.sequences = try await Self.sequenceValues(on: connection, logger: logger)
                        try begin(plan)
                        try await connection.guardedQuery(
                            """
                            DECLARE vigil_export NO SCROLL CURSOR FOR
                            SELECT \(unescaped: Self.exportLine) FROM events e
                            WHERE e.position = ANY(\(plan.positions)::int8[]) ORDER BY e.tx_id, e.position
                            """, logger: logger)
                        let read = try await Self.fetchExport(
                            pageSize: pageSize, on: connection, logger: logger, page)
                        guard read == plan.logEvents else {
                            throw LogImportError("retention read \(read) events, but planned \(plan.logEvents)")
                        }
                        try await connection.guardedQuery("CLOSE vigil_export", logger: logger)
                        let sealed = try await seal(plan)
                        segment = sealed
                        try await Self.remove(plan, segment: sealed, on: connection, logger: logger)
                    }
                    if plan.operationalLogs > 0 {
                        try await connection.guardedQuery(
                            "DELETE FROM operational_logs WHERE logged_at < \(cutoff)", logger: logger)
                    }
                    let request = try record(plan, segment)
                    let results = try await connection.whileOpen {
                        try await LogWriter.write([request], method: .insert, on: connection, logger: logger)
                    }
                    _ = try results[0].get()
                    return (plan, segment)
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "40001" {
                throw RetentionConflict()
            }
        }
    }

    /// The newest checkpoint retention may reach: the head, or the oldest live checkpoint of a
    /// projection or reactor behind it.
    func retentionBound() async throws -> Checkpoint {
        let head = try await head()
        let rows = try await client.guardedQuery(
            """
            SELECT c.checkpoint_tx::text, c.checkpoint_position
            FROM projections p JOIN projection_checkpoints c ON c.name = p.name AND c.generation = p.live_generation
            ORDER BY c.checkpoint_tx, c.checkpoint_position LIMIT 1
            """, logger: logger)
        for try await (transaction, position) in rows.decode((String, Int64).self) {
            let slowest = Checkpoint(transactionText: transaction, position: position)
            return slowest < head ? slowest : head
        }
        return head
    }

    private static func plan(
        cutoff: Date, bound: Checkpoint, on connection: PostgresConnection, logger: Logger
    ) async throws -> RetentionPlan {
        var plan = RetentionPlan(cutoff: cutoff, bound: bound)
        let within = "(e.tx_id, e.position) <= ('\(bound.transactionID)'::xid8, \(bound.position))"
        let rows = try await connection.guardedQuery(
            PostgresQuery(
                unsafeSQL: """
                    WITH expired AS (
                        SELECT (e.data->>'id')::int8 AS id, e.stream FROM events e
                        WHERE e.type = 'SecurityEventOpened' AND (e.data->>'started_at')::timestamptz < $1
                          AND \(within)),
                    units AS (
                        SELECT id, stream FROM expired
                        UNION
                        SELECT (e.data->>'event_id')::int8, e.stream FROM events e
                        WHERE e.type = 'AlertTriggered'
                          AND EXISTS (SELECT 1 FROM expired x WHERE x.id = (e.data->>'event_id')::int8)),
                    held AS (
                        SELECT DISTINCT u.id FROM units u JOIN events e ON e.stream = u.stream
                        WHERE NOT \(within)),
                    taken AS (SELECT * FROM units u WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.id = u.id)),
                    kept_detections AS (
                        SELECT DISTINCT jsonb_array_elements_text(e.data->'detection_ids')::int8 AS id FROM events e
                        WHERE e.type IN ('SecurityEventOpened', 'SecurityEventClosed')
                          AND NOT EXISTS (SELECT 1 FROM taken t WHERE t.stream = e.stream)),
                    unit_detections AS (
                        SELECT DISTINCT jsonb_array_elements_text(e.data->'detection_ids')::int8 AS id
                        FROM events e JOIN taken t ON t.stream = e.stream
                        WHERE e.type IN ('SecurityEventOpened', 'SecurityEventClosed')),
                    -- Joins and EXISTS, never IN/NOT IN over a subquery: a subplan too big to
                    -- hash is scanned once per row (minutes at 100k events).
                    detections AS (
                        SELECT e.position FROM events e
                        LEFT JOIN kept_detections k ON k.id = (e.data->>'id')::int8
                        LEFT JOIN unit_detections u ON u.id = (e.data->>'id')::int8
                        WHERE e.type = 'DetectionRecorded' AND \(within) AND k.id IS NULL
                          AND (u.id IS NOT NULL
                               OR ((e.data->>'detected_at')::timestamptz < $1 AND e.recorded_at < $1))),
                    positions AS (
                        SELECT e.position FROM events e JOIN taken t ON t.stream = e.stream
                        UNION ALL
                        SELECT position FROM detections)
                    SELECT (SELECT count(*) FROM taken WHERE stream LIKE 'secevent-%'),
                           (SELECT count(*) FROM taken WHERE stream NOT LIKE 'secevent-%'),
                           (SELECT count(*) FROM detections),
                           array(SELECT stream FROM taken ORDER BY stream),
                           array(SELECT position FROM positions ORDER BY position),
                           (SELECT coalesce(sum(pg_column_size(e.*)), 0)::int8
                            FROM events e JOIN positions p ON p.position = e.position),
                           (SELECT count(*) FROM operational_logs WHERE logged_at < $1),
                           (SELECT count(*) FILTER (WHERE previous IS NULL OR r.position < previous) FROM (
                                SELECT e.position, lag(e.position) OVER (ORDER BY e.tx_id, e.position) AS previous
                                FROM events e JOIN positions p ON p.position = e.position) AS r)
                    """,
                binds: {
                    var binds = PostgresBindings()
                    binds.append(cutoff)
                    return binds
                }()),
            logger: logger)
        for try await row in rows.decode((Int64, Int64, Int64, [String], [Int64], Int64, Int64, Int64).self) {
            plan.securityEvents = Int(row.0)
            plan.alerts = Int(row.1)
            plan.detections = Int(row.2)
            plan.streams = row.3
            plan.positions = row.4
            plan.bytes = row.5
            plan.operationalLogs = Int(row.6)
            plan.runs = Int(row.7)
        }
        return plan
    }

    /// Deletes the planned events and marks their whole streams archived (locking them first:
    /// one written since the snapshot fails the transaction with a serialization error), and
    /// records the segment.
    private static func remove(
        _ plan: RetentionPlan, segment: ArchivedSegment, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.guardedQuery(
            "SELECT 1 FROM streams WHERE stream = ANY(\(plan.streams)::text[]) ORDER BY stream FOR UPDATE",
            logger: logger)
        try await connection.guardedQuery("SET LOCAL vigil.retention = 'on'", logger: logger)
        let deleted = try await connection.guardedQuery(
            """
            WITH gone AS (DELETE FROM events WHERE position = ANY(\(plan.positions)::int8[]) RETURNING 1)
            SELECT count(*) FROM gone
            """, logger: logger
        ).decode(Int64.self).first { _ in true }
        guard deleted == Int64(plan.logEvents) else {
            throw LogImportError("retention deleted \(deleted ?? 0) events, but archived \(plan.logEvents)")
        }
        try await connection.guardedQuery("SET LOCAL vigil.retention = 'off'", logger: logger)
        try await connection.guardedQuery(
            "UPDATE streams SET archived_at = now() WHERE stream = ANY(\(plan.streams)::text[])", logger: logger)
        try await connection.guardedQuery(
            """
            INSERT INTO log_archive_segments
                (name, cutoff, log_events, first_position, last_position, file_bytes, sha256)
            VALUES (\(segment.name), \(plan.cutoff), \(Int64(plan.logEvents)), \(plan.positions.first ?? 0),
                    \(plan.positions.last ?? 0), \(Int64(segment.fileBytes)), \(segment.sha256))
            """, logger: logger)
    }

    /// The segments retention recorded, oldest first.
    public func archivedSegments() async throws -> [ArchivedSegmentRecord] {
        let rows = try await client.guardedQuery(
            """
            SELECT name, created_at, cutoff, log_events, first_position, last_position, file_bytes, sha256
            FROM log_archive_segments ORDER BY created_at, name
            """, logger: logger)
        var records: [ArchivedSegmentRecord] = []
        for try await row in rows.decode((String, Date, Date, Int64, Int64, Int64, Int64, String).self) {
            records.append(
                ArchivedSegmentRecord(
                    name: row.0, createdAt: row.1, cutoff: row.2, logEvents: row.3, firstPosition: row.4,
                    lastPosition: row.5, fileBytes: row.6, sha256: row.7))
        }
        return records
    }
}

/// A segment as `log_archive_segments` records it.
public struct ArchivedSegmentRecord: Sendable, Equatable {
    public var name: String
    public var createdAt: Date
    public var cutoff: Date
    public var logEvents: Int64
    public var firstPosition: Int64
    public var lastPosition: Int64
    public var fileBytes: Int64
    public var sha256: String
}
