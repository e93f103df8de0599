import Foundation
import Logging
import PostgresNIO

extension EventStore {
    /// Reads the global log after `checkpoint`, in log order, up to `limit` matching events.
    ///
    /// Only rows written by transactions below the read horizon are read (``ReadHorizon``:
    /// older than every transaction of this database still running): those can no longer be
    /// joined by an event that sorts before them, so a reader that moves its checkpoint to
    /// the last event it saw never misses one. Events of a still-open transaction, and of
    /// any transaction that started after it, wait until it ends. A transaction of another
    /// database holds nothing back: when the plain horizon (the cluster's oldest running
    /// transaction) is one, the page is read again with other databases' transactions left out.
    ///
    /// `checkpoint` must be one a read handed out (``LogPage/next``, an event's checkpoint
    /// from a page, ``head()``), or ``Checkpoint/start``: those are below the horizon, which
    /// never moves back. A checkpoint whose transaction is not below the horizon yet (an
    /// append's or a stream read's per-event checkpoint, which are for comparing only) is
    /// refused with ``LogReadError/beyondHorizon(_:horizon:)``: answering it would skip the
    /// events of older transactions still in flight, which sort below it.
    ///
    /// `bodies: false` leaves each event's `data` and `metadata` on the server (empty strings):
    /// the page is then only where events are and what type, for a reader whose statements
    /// read the events from the table themselves (a projection's rebuild).
    ///
    /// `connection`: the read runs on it, for a caller that holds one and is waiting anyway
    /// (a projection's runner), instead of on one more from the pool. See
    /// ``readShared(as:after:filter:limit:on:)`` for why that matters.
    public func read(
        after checkpoint: Checkpoint, filter: LogFilter = .all, limit: Int = 1000, bodies: Bool = true,
        on connection: PostgresConnection? = nil
    ) async throws -> LogPage {
        let limit = max(1, limit)
        let transaction = String(checkpoint.transactionID)
        let result = try await withReadHorizon(on: connection) { horizon in
            // One statement, one snapshot: the page (kind 0), the newest readable checkpoint
            // (1: where the next read starts when the page isn't full), whether committed events
            // wait beyond the horizon (2; with the plain horizon, leaving out other databases'
            // transactions might then read further), and whether the checkpoint is not below
            // the horizon (3). A function whose plan is kept (`vigil_read_log`,
            // schemas/store/0013_read_log_kept_plans.sql): planning the statement at every call
            // cost more than running it.
            let query: PostgresQuery = """
                SELECT kind, tx, position, event_id, stream, version, type, schema_version, data, metadata,
                       recorded_at
                FROM public.vigil_read_log(
                    \(transaction)::text::xid8, \(checkpoint.position)::int8,
                    \(horizon.leftOutText)::text[]::xid8[], \(filter.types)::text[],
                    \(filter.streamPrefix)::text, \(limit)::int4, \(bodies))
                """
            let rows = try await client.guardedQuery(query, prepared: true, on: connection, logger: logger)
            var events: [RecordedEvent] = []
            events.reserveCapacity(min(limit, 1000))
            var head = checkpoint
            var pending = false
            var beyond: UInt64?
            var stalled: UInt64?
            for try await row in rows {
                let (kind, transaction, position) = try row.decode((Int32, String, Int64).self)
                let at = Checkpoint(transactionText: transaction, position: position)
                switch kind {
                case 0: events.append(try Self.recordedEvent(row, at: at))
                case 1: head = at
                case 2:
                    // Committed events wait beyond the horizon (kind 2 carries the horizon). For
                    // the plain horizon, that is a stall at the cluster's oldest running
                    // transaction, unless the checkpoint is beyond it (kind 3): a narrowed
                    // horizon might read further.
                    pending = true
                    if horizon.leftOut.isEmpty { stalled = at.transactionID }
                default: beyond = at.transactionID
                }
            }
            // A checkpoint beyond the plain horizon may be below a narrowed one (an earlier read
            // left a foreign transaction out): look before refusing it.
            let stall: HorizonStall =
                beyond != nil && horizon.leftOut.isEmpty ? .beyond : stalled.map { .at($0) } ?? .none
            return ((events, head, pending, beyond), stall)
        }
        if let beyond = result.3 { throw LogReadError.beyondHorizon(checkpoint, horizon: beyond) }
        var events = result.0
        let (head, pending) = (result.1, result.2)
        events.sort { $0.checkpoint < $1.checkpoint }
        let isFull = events.count == limit
        let next =
            isFull ? events[events.count - 1].checkpoint : max(head, events.last?.checkpoint ?? checkpoint, checkpoint)
        return LogPage(events: events, next: next, isFull: isFull, pendingBeyondHorizon: pending)
    }

    /// ``read(after:filter:limit:bodies:)`` without bodies, for one of several readers that
    /// walk the whole log at once (the projection rebuilds): the pages come from one stretch of
    /// the log read once for all of them (``LogWindow``), or from the table when `reader` is
    /// outside it. `reader` names the reader (its place keeps that stretch in the window).
    ///
    /// Its events carry their checkpoint, type and recording time only (no id, stream or
    /// version). A page may hold fewer than `limit` events and still be full (more may follow
    /// right away): it ends where the shared stretch ends.
    ///
    /// Every read it makes runs on `connection`, the one the reader holds (it waits for the page
    /// anyway). The readers wait for the window's one read; were it to ask the pool for a
    /// connection, every holder could be waiting on a lease only a holder's release can serve.
    /// PostgresNIO 1.33's pool makes that more than a full pool: requests queued while 20
    /// connections are being opened at once are served only as connections come back, not by
    /// opening more (its `handleAvailableConnection` counts leased connections as soon free).
    public func readShared(
        as reader: String, after checkpoint: Checkpoint, filter: LogFilter, limit: Int,
        on connection: PostgresConnection
    ) async throws -> LogPage {
        if let page = try await window.page(
            for: reader, after: checkpoint, filter: filter, limit: limit, store: self, on: connection)
        {
            return page
        }
        return try await read(after: checkpoint, filter: filter, limit: limit, bodies: false, on: connection)
    }

    /// `reader` is done with ``readShared(as:after:filter:limit:on:)``: what only it read is let go.
    public func leaveShared(_ reader: String) async {
        await window.leave(reader)
    }

    /// Runs `body`, which reads with ``readShared(as:after:filter:limit:on:)`` as `reader`, and
    /// leaves the shared stretch afterwards (``leaveShared(_:)``), whether `body` returns or throws.
    public func readingShared<Value: Sendable>(
        as reader: String, _ body: () async throws -> Value
    ) async throws -> Value {
        let value: Value
        do {
            value = try await body()
        } catch {
            await leaveShared(reader)
            throw error
        }
        await leaveShared(reader)
        return value
    }

    /// The newest checkpoint readers can read up to now.
    ///
    /// Every `ORDER BY` names the `xid8` column qualified (`e.tx_id`): an unqualified name
    /// would mean the `tx_id::text` output column and sort "9996" above "22054".
    public func head() async throws -> Checkpoint {
        try await withReadHorizon { horizon in
            let rows = try await client.guardedQuery(
                """
                SELECT last.tx_id, last.position, n.stalled
                FROM (SELECT \(unescaped: horizon.stalledSQL) AS stalled) AS n
                LEFT JOIN LATERAL (
                    SELECT e.tx_id::text AS tx_id, e.position FROM events e
                    WHERE e.tx_id < \(unescaped: horizon.sql)
                    ORDER BY e.tx_id DESC, e.position DESC LIMIT 1) AS last ON true
                """,
                logger: logger
            )
            for try await (transaction, position, stalled) in rows.decode((String?, Int64?, String?).self) {
                let stall: HorizonStall = stalled.flatMap { UInt64($0) }.map { .at($0) } ?? .none
                guard let transaction, let position else { return (.start, stall) }
                return (Checkpoint(transactionText: transaction, position: position), stall)
            }
            return (.start, .none)
        }
    }

    /// Where the event at `version` of `stream` sits in the log (nil: no such event).
    public func checkpoint(of stream: String, version: Int64) async throws -> Checkpoint? {
        let rows = try await client.guardedQuery(
            "SELECT tx_id::text, position FROM events WHERE stream = \(stream) AND version = \(version)",
            logger: logger)
        for try await (transaction, position) in rows.decode((String, Int64).self) {
            return Checkpoint(transactionText: transaction, position: position)
        }
        return nil
    }

    /// The stream's current version (0: no events): one primary-key lookup.
    public func version(of stream: String) async throws -> Int64 {
        let rows = try await client.guardedQuery(
            "SELECT version FROM streams WHERE stream = \(stream)", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return 0
    }

    /// Reads one stream from `fromVersion` (exclusive) on, in version order.
    ///
    /// A stream's versions commit in order (appends lock the stream), so a stream read needs
    /// no horizon. Returns nil when the stream has no events.
    public func readStream(_ stream: String, fromVersion: Int64 = 0, limit: Int = 1000) async throws -> StreamPage? {
        let version = try await version(of: stream)
        guard version > 0 else { return nil }
        let rows = try await client.guardedQuery(
            """
            SELECT 0, tx_id::text, position, event_id, stream, version, type, schema_version,
                   data::text, metadata::text, recorded_at
            FROM events WHERE stream = \(stream) AND version > \(fromVersion)
            ORDER BY version LIMIT \(max(1, limit))
            """,
            logger: logger
        )
        return StreamPage(stream: stream, version: version, events: try await Self.recordedEvents(rows))
    }

    /// Every event of one stream, in version order, read a page at a time (nil: the stream has
    /// no events): what a command is decided against, however long the stream has grown.
    public func readWholeStream(_ stream: String) async throws -> StreamPage? {
        let pageSize = 1000
        guard var whole = try await readStream(stream, limit: pageSize) else { return nil }
        var last = whole.events
        while last.count == pageSize, let version = last.last?.version,
            let page = try await readStream(stream, fromVersion: version, limit: pageSize)
        {
            whole.events += page.events
            whole.version = max(whole.version, page.version)
            last = page.events
        }
        return whole
    }

    /// Stream `stream` folded by `fold` (its events' types and data, in version order), and the
    /// stream's version (nil and 0 when it has no events): what a command is decided against.
    public func folded<Value>(
        _ stream: String, _ fold: ([(type: String, data: String)]) throws -> Value?
    ) async throws -> (Value?, Int64) {
        guard let page = try await readWholeStream(stream) else { return (nil, 0) }
        return (try fold(page.events.map { ($0.type, $0.data) }), page.version)
    }

    /// The events at `checkpoints` (checkpoints an earlier read returned), in log order; ones
    /// that are not in the log are left out.
    public func events(at checkpoints: [Checkpoint]) async throws -> [RecordedEvent] {
        guard !checkpoints.isEmpty else { return [] }
        let transactions = checkpoints.map { String($0.transactionID) }
        let positions = checkpoints.map(\.position)
        let rows = try await client.guardedQuery(
            """
            SELECT 0, e.tx_id::text, e.position, e.event_id, e.stream, e.version, e.type, e.schema_version,
                   e.data::text, e.metadata::text, e.recorded_at
            FROM unnest(\(transactions)::text[], \(positions)::int8[]) AS c(tx, position)
            JOIN events e ON e.position = c.position AND e.tx_id = c.tx::xid8
            ORDER BY e.tx_id, e.position
            """,
            logger: logger
        )
        return try await Self.recordedEvents(rows)
    }

    /// The stored events with these ids (an id is unique in the log), in log order; ids that are
    /// not stored are left out. What a retried write's first attempt stored.
    public func events(withIDs ids: [UUID]) async throws -> [RecordedEvent] {
        guard !ids.isEmpty else { return [] }
        let rows = try await client.guardedQuery(
            """
            SELECT 0, e.tx_id::text, e.position, e.event_id, e.stream, e.version, e.type, e.schema_version,
                   e.data::text, e.metadata::text, e.recorded_at
            FROM events e WHERE e.event_id = ANY(\(ids))
            ORDER BY e.tx_id, e.position
            """,
            logger: logger
        )
        return try await Self.recordedEvents(rows)
    }

    /// Decodes the rows of the stream and id reads: columns 1 and 2 are the checkpoint.
    static func recordedEvents<Rows: AsyncSequence>(_ rows: Rows) async throws -> [RecordedEvent]
    where Rows.Element == PostgresRow {
        var events: [RecordedEvent] = []
        for try await row in rows {
            let (_, transaction, position) = try row.decode((Int32, String, Int64).self)
            events.append(try recordedEvent(row, at: Checkpoint(transactionText: transaction, position: position)))
        }
        return events
    }

    /// Decodes columns 3… of the read queries above.
    static func recordedEvent(_ row: PostgresRow, at checkpoint: Checkpoint) throws -> RecordedEvent {
        let (_, _, _, id, stream, version, type, schemaVersion, data, metadata, recordedAt) = try row.decode(
            (Int32, String, Int64, UUID, String, Int64, String, Int32, String, String, Date).self
        )
        return RecordedEvent(
            checkpoint: checkpoint,
            id: id,
            stream: stream,
            version: version,
            type: type,
            schemaVersion: schemaVersion,
            data: data,
            metadata: metadata,
            recordedAt: recordedAt
        )
    }
}

/// A read the log refuses.
public enum LogReadError: Error, Equatable, CustomStringConvertible {
    /// The checkpoint's transaction is not below the read horizon (`horizon`, a transaction
    /// id) yet: no horizon-bounded read handed it out, and older transactions may still
    /// commit events that sort before it. Read again once the horizon has passed it, or
    /// read from a checkpoint a page returned.
    case beyondHorizon(Checkpoint, horizon: UInt64)

    public var description: String {
        switch self {
        case .beyondHorizon(let checkpoint, let horizon):
            "checkpoint \(checkpoint.token) is beyond the log's read horizon (transaction \(horizon)): "
                + "only checkpoints handed out by log reads can be read after; "
                + "an append's or a stream's event checkpoints are for comparing only"
        }
    }
}
