import Foundation
import PostgresNIO

/// Where a read back in time stops: just after the event at a checkpoint, or at a time.
public enum LogPoint: Sendable, Hashable {
    /// Everything at or before this checkpoint in log order. Only a checkpoint below the read
    /// horizon is settled (no older transaction can still add an event before it).
    case checkpoint(Checkpoint)
    /// Everything recorded at or before this time (`recorded_at`: when the writing transaction
    /// began), as far as that is a prefix of the stream.
    case time(Date)
}

extension EventStore {
    /// The stream's events up to `point`, in version order: the state the stream was in then
    /// is the fold of these.
    ///
    /// The answer is always a prefix of the stream, a state it really was in. At a checkpoint
    /// that holds by itself (a stream's versions commit in log order); at a time it stops at the
    /// first version recorded after it, so a later version whose transaction began a little
    /// earlier can't slip in before it.
    ///
    /// A checkpoint not yet below the read horizon is refused with
    /// ``LogReadError/beyondHorizon(_:horizon:)``, as ``read(after:filter:limit:)`` refuses it:
    /// an older transaction still running may yet commit to this stream before it.
    ///
    /// Read `pageSize` versions at a time, however long the stream (it once stopped at 100,000
    /// without a word).
    public func readStream(
        _ stream: String, upTo point: LogPoint, pageSize: Int = 10_000
    ) async throws
        -> [RecordedEvent]
    {
        let pageSize = max(1, pageSize)
        var events: [RecordedEvent] = []
        while true {
            let page = try await readStreamPage(
                stream, upTo: point, afterVersion: events.last?.version ?? 0, limit: pageSize)
            events += page
            if page.count < pageSize { return events }
        }
    }

    /// Up to `limit` versions of the stream after `afterVersion`, up to `point`.
    private func readStreamPage(
        _ stream: String, upTo point: LogPoint, afterVersion: Int64, limit: Int
    ) async throws
        -> [RecordedEvent]
    {
        switch point {
        case .time(let time):
            let rows = try await client.guardedQuery(
                """
                SELECT 0, e.tx_id::text, e.position, e.event_id, e.stream, e.version, e.type, e.schema_version,
                       e.data::text, e.metadata::text, e.recorded_at
                FROM events e
                WHERE e.stream = \(stream) AND e.version > \(afterVersion)
                  AND e.version < coalesce(
                      (SELECT min(l.version) FROM events l
                       WHERE l.stream = \(stream) AND l.recorded_at > \(unescaped: Self.timeSQL(time))),
                      9223372036854775807)
                ORDER BY e.version LIMIT \(limit)
                """,
                logger: logger)
            return try await Self.recordedEvents(rows)
        case .checkpoint(let checkpoint):
            let transaction = String(checkpoint.transactionID)
            let (events, beyond) = try await withReadHorizon { horizon in
                let rows = try await client.guardedQuery(
                    """
                    WITH h AS MATERIALIZED (SELECT \(unescaped: horizon.sql) AS xmin)
                    (SELECT 0 AS kind, e.tx_id::text, e.position, e.event_id, e.stream, e.version, e.type,
                            e.schema_version, e.data::text, e.metadata::text, e.recorded_at
                     FROM events e
                     WHERE e.stream = \(stream) AND e.version > \(afterVersion)
                       AND (e.tx_id, e.position) <= (\(transaction)::text::xid8, \(checkpoint.position)::int8)
                     ORDER BY e.version LIMIT \(limit))
                    UNION ALL
                    (SELECT 3, xmin::text, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                     FROM h WHERE \(transaction)::text::xid8 >= xmin)
                    """,
                    logger: logger)
                var events: [RecordedEvent] = []
                var beyond: UInt64?
                for try await row in rows {
                    let (kind, transaction, position) = try row.decode((Int32, String, Int64).self)
                    let at = Checkpoint(transactionText: transaction, position: position)
                    if kind == 0 {
                        events.append(try Self.recordedEvent(row, at: at))
                    } else {
                        beyond = at.transactionID
                    }
                }
                // A checkpoint beyond the plain horizon may be below a narrowed one.
                let stall: HorizonStall = beyond != nil && horizon.leftOut.isEmpty ? .beyond : .none
                return ((events, beyond), stall)
            }
            if let beyond { throw LogReadError.beyondHorizon(checkpoint, horizon: beyond) }
            return events.sorted { $0.version < $1.version }
        }
    }

    /// The latest of the times its events carry under `field` (a top-level ISO 8601 string of
    /// the payload), over the events of `stream` after `after` and up to `point`; nil when there
    /// are none. One aggregate in the database, however long the stream: a camera's
    /// `last_seen_at` as it was at `point`.
    public func latestTime(
        _ field: String, in stream: String, after: Checkpoint, upTo point: LogPoint
    )
        async throws -> Date?
    {
        let afterTransaction = String(after.transactionID)
        var time = "NULL::timestamptz"
        var transaction = String(UInt64.max)
        var position = Int64.max
        switch point {
        case .time(let date): time = Self.timeSQL(date)
        case .checkpoint(let checkpoint):
            (transaction, position) = (String(checkpoint.transactionID), checkpoint.position)
        }
        let rows = try await client.guardedQuery(
            """
            SELECT max((e.data->>\(field))::timestamptz) FROM events e
            WHERE e.stream = \(stream)
              AND (e.tx_id, e.position) > (\(afterTransaction)::text::xid8, \(after.position)::int8)
              AND (e.tx_id, e.position) <= (\(transaction)::text::xid8, \(position)::int8)
              AND (\(unescaped: time) IS NULL OR e.recorded_at <= \(unescaped: time))
            """,
            logger: logger)
        for try await latest in rows.decode(Date?.self) { return latest }
        return nil
    }

    /// `date` as a `timestamptz` literal, to the nearest microsecond. A bound `Date` would be
    /// cut to the microsecond below (PostgresNIO truncates), and the `Double` of a time read
    /// from `….123456Z` may lie a hair under it: a time copied from an answer would then miss
    /// the very event it was copied from.
    static func timeSQL(_ date: Date) -> String {
        let microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return "('epoch'::timestamptz + \(microseconds)::int8 * interval '1 microsecond')"
    }
}
