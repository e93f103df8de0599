import Foundation
import Logging
import PostgresNIO

/// The one write path of the log: every append, batched or bulk, goes through
/// ``write(_:method:on:logger:)`` inside a transaction.
///
/// Per transaction, whatever the number of requests: one statement locks the streams and
/// reads their versions, one looks up already-stored event ids, one writes the events
/// (multi-row `INSERT … SELECT unnest(…)`, or `COPY`) and bumps the stream versions.
enum LogWriter {
    enum Method {
        case insert
        case copy
    }

    private struct StoredEvent {
        var stream: String
        var version: Int64
        var checkpoint: Checkpoint
        var requestDigest: String?
    }

    private struct Row {
        var request: Int
        var event: NewEvent
        var stream: String
        var version: Int64
    }

    /// The decision for one request before anything is written.
    private enum Decision {
        case refused(AppendError)
        case alreadyStored(AppendResult)
        /// Accepted: its events are rows `firstRow..<firstRow + count` with versions ending at `version`.
        case accepted(firstRow: Int, count: Int, version: Int64)
        /// Repeats request `index` of the same batch: gets its result.
        case sameAs(Int)
    }

    static func write(
        _ requests: [AppendRequest],
        method: Method,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [Result<AppendResult, AppendError>] {
        guard !requests.isEmpty else { return [] }
        var (versions, archived) = try await lockStreams(
            Set(requests.map(\.stream)).sorted(), on: connection, logger: logger)
        let stored = try await storedEvents(requests.flatMap { $0.events.map(\.id) }, on: connection, logger: logger)

        var rows: [Row] = []
        var decisions: [Decision] = []
        var idsInBatch: [UUID: Int] = [:]  // event id → request that writes it
        decisions.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let decision = decide(
                request,
                index: index,
                archived: archived,
                requests: requests,
                versions: &versions,
                stored: stored,
                idsInBatch: &idsInBatch,
                firstRow: rows.count
            )
            if case .accepted(_, _, let last) = decision {
                let first = last - Int64(request.events.count) + 1
                for (offset, event) in request.events.enumerated() {
                    rows.append(
                        Row(request: index, event: event, stream: request.stream, version: first + Int64(offset)))
                }
            }
            decisions.append(decision)
        }

        var checkpoints: [UUID: Checkpoint] = [:]
        if !rows.isEmpty {
            switch method {
            case .insert: checkpoints = try await insert(rows, versions: versions, on: connection, logger: logger)
            case .copy: try await copy(rows, versions: versions, on: connection, logger: logger)
            }
        }

        var results: [Result<AppendResult, AppendError>] = []
        results.reserveCapacity(requests.count)
        for (index, decision) in decisions.enumerated() {
            switch decision {
            case .refused(let error):
                results.append(.failure(error))
            case .alreadyStored(let result):
                results.append(.success(result))
            case .accepted(let firstRow, let count, let version):
                let written = rows[firstRow..<firstRow + count].compactMap { checkpoints[$0.event.id] }
                let result = AppendResult(
                    stream: requests[index].stream,
                    version: version,
                    checkpoints: written,
                    wasAlreadyStored: false
                )
                results.append(.success(result))
            case .sameAs(let original):
                results.append(
                    results[original].map { result in
                        var repeated = result
                        repeated.wasAlreadyStored = true
                        return repeated
                    })
            }
        }
        return results
    }

    private static func decide(
        _ request: AppendRequest,
        index: Int,
        archived: Set<String>,
        requests: [AppendRequest],
        versions: inout [String: Int64],
        stored: [UUID: StoredEvent],
        idsInBatch: inout [UUID: Int],
        firstRow: Int
    ) -> Decision {
        if let problem = validate(request) { return .refused(.invalidRequest(problem)) }
        let ids = request.events.map(\.id)

        // Idempotency: a request whose events are all stored, in this stream and in this
        // order, from the same input, is a retry and gets the original result.
        let alreadyStored = ids.compactMap { stored[$0] }
        if !alreadyStored.isEmpty {
            let isRetry =
                alreadyStored.count == ids.count
                && alreadyStored.allSatisfy { $0.stream == request.stream }
                && zip(alreadyStored, alreadyStored.dropFirst()).allSatisfy { $0.version + 1 == $1.version }
                && zip(request.events, alreadyStored).allSatisfy { sameInput($0.requestDigest, $1.requestDigest) }
            guard isRetry else {
                return .refused(.duplicateEventID(ids.first { stored[$0] != nil }!))
            }
            let result = AppendResult(
                stream: request.stream,
                version: alreadyStored.last!.version,
                checkpoints: alreadyStored.map(\.checkpoint),
                wasAlreadyStored: true
            )
            return .alreadyStored(result)
        }
        // The same events twice in one batch (a client retrying while its first call is queued).
        if let first = ids.first, let earlier = idsInBatch[first] {
            let original = requests[earlier]
            if original.stream == request.stream && original.events.map(\.id) == ids
                && zip(original.events, request.events).allSatisfy({ sameInput($0.requestDigest, $1.requestDigest) })
            {
                return .sameAs(earlier)
            }
            return .refused(.duplicateEventID(first))
        }
        if let clash = ids.first(where: { idsInBatch[$0] != nil }) { return .refused(.duplicateEventID(clash)) }

        if archived.contains(request.stream) { return .refused(.streamArchived(stream: request.stream)) }
        let current = versions[request.stream] ?? 0
        guard request.expected.accepts(current) else {
            return .refused(.wrongExpectedVersion(stream: request.stream, expected: request.expected, current: current))
        }
        let version = current + Int64(request.events.count)
        versions[request.stream] = version
        for id in ids { idsInBatch[id] = index }
        return .accepted(firstRow: firstRow, count: ids.count, version: version)
    }

    /// Whether two events under one id were made from the same client input: their digests
    /// agree. A digest names its form before a colon (`c1:…`; the first ones had no prefix and
    /// another canonical encoding). An event stored before digests were recorded, appended
    /// without one, or with one of another form (a retry across an upgrade) can't tell, and
    /// counts as the same.
    static func sameInput(_ new: String?, _ stored: String?) -> Bool {
        guard let new, let stored, digestForm(new) == digestForm(stored) else { return true }
        return new == stored
    }

    private static func digestForm(_ digest: String) -> Substring? {
        digest.utf8.firstIndex(of: UInt8(ascii: ":")).map { digest[..<$0] }
    }

    /// The checks every request must pass (``decide``, and whether ``fitsOneStatement(_:)``).
    static func validate(_ request: AppendRequest) -> String? {
        if request.stream.isEmpty { return "stream name must not be empty" }
        if let event = request.events.first(where: { $0.type.isEmpty }) { return "event \(event.id) has an empty type" }
        if Set(request.events.map(\.id)).count != request.events.count { return "the same event id appears twice" }
        return nil
    }

    /// Locks the streams' rows (creating them at version 0) in a fixed order, so concurrent
    /// writers of the same streams queue instead of deadlocking, and returns their versions.
    ///
    /// Also returns the streams retention archived (``AppendError/streamArchived(stream:)``).
    ///
    /// - Throws: ``StaleTransaction`` when a stream's newest event was written by a younger
    ///   transaction than this one (it got the lock first): appending now would put this
    ///   stream's next version before its previous one in the log order.
    private static func lockStreams(
        _ streams: [String], on connection: PostgresConnection, logger: Logger
    )
        async throws -> (versions: [String: Int64], archived: Set<String>)
    {
        let rows = try await connection.preparedQuery(
            """
            INSERT INTO streams AS s (stream, version)
            SELECT name, 0 FROM unnest(\(streams)::text[]) AS name ORDER BY name
            ON CONFLICT (stream) DO UPDATE SET version = s.version
            RETURNING stream, version, coalesce(last_tx > pg_current_xact_id(), false), archived_at IS NOT NULL
            """,
            logger: logger
        )
        var versions: [String: Int64] = [:]
        var archived: Set<String> = []
        for try await (stream, version, writtenByYounger, isArchived) in rows.decode((String, Int64, Bool, Bool).self) {
            if writtenByYounger { throw StaleTransaction(stream: stream) }
            versions[stream] = version
            if isArchived { archived.insert(stream) }
        }
        return (versions, archived)
    }

    private static func storedEvents(
        _ ids: [UUID], on connection: PostgresConnection, logger: Logger
    )
        async throws -> [UUID: StoredEvent]
    {
        let rows = try await connection.preparedQuery(
            """
            SELECT event_id, stream, version, tx_id::text, position, metadata->>'request_digest'
            FROM events WHERE event_id = ANY(\(ids)::uuid[])
            """,
            logger: logger
        )
        var stored: [UUID: StoredEvent] = [:]
        for try await (id, stream, version, transaction, position, digest) in rows.decode(
            (UUID, String, Int64, String, Int64, String?).self
        ) {
            let checkpoint = Checkpoint(transactionText: transaction, position: position)
            stored[id] = StoredEvent(stream: stream, version: version, checkpoint: checkpoint, requestDigest: digest)
        }
        return stored
    }

    private static func insert(
        _ rows: [Row],
        versions: [String: Int64],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [UUID: Checkpoint] {
        let ids = rows.map(\.event.id)
        let streams = rows.map(\.stream)
        let eventVersions = rows.map(\.version)
        let types = rows.map(\.event.type)
        let schemaVersions = rows.map(\.event.schemaVersion)
        let data = rows.map(\.event.data)
        let metadata = rows.map(\.event.metadata)
        let (touched, touchedVersions) = newVersions(of: rows, versions: versions)
        // The stream bump rides along in the same statement: one round trip.
        let result = try await connection.preparedQuery(
            """
            WITH bumped AS (
                UPDATE streams SET version = u.version, last_tx = pg_current_xact_id()
                FROM unnest(\(touched)::text[], \(touchedVersions)::int8[]) AS u(stream, version)
                WHERE streams.stream = u.stream
            )
            INSERT INTO events (event_id, stream, version, type, schema_version, data, metadata)
            SELECT e, s, v, t, sv, d::jsonb, m::jsonb
            FROM unnest(\(ids)::uuid[], \(streams)::text[], \(eventVersions)::int8[], \(types)::text[],
                        \(schemaVersions)::int4[], \(data)::text[], \(metadata)::text[]) AS u(e, s, v, t, sv, d, m)
            RETURNING event_id, tx_id::text, position
            """,
            logger: logger
        )
        var checkpoints: [UUID: Checkpoint] = [:]
        checkpoints.reserveCapacity(rows.count)
        for try await (id, transaction, position) in result.decode((UUID, String, Int64).self) {
            checkpoints[id] = Checkpoint(transactionText: transaction, position: position)
        }
        return checkpoints
    }

    private static func copy(
        _ rows: [Row],
        versions: [String: Int64],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let (touched, touchedVersions) = newVersions(of: rows, versions: versions)
        try await connection.query(
            """
            UPDATE streams SET version = u.version, last_tx = pg_current_xact_id()
            FROM unnest(\(touched)::text[], \(touchedVersions)::int8[]) AS u(stream, version)
            WHERE streams.stream = u.stream
            """,
            logger: logger
        )
        try await connection.copyFrom(table: "events", columns: CopyText.eventColumns, logger: logger) { writer in
            var buffer = ByteBuffer()
            buffer.reserveCapacity(1 << 20)
            for row in rows {
                CopyText.writeRow(row.event, stream: row.stream, version: row.version, to: &buffer)
                if buffer.readableBytes >= 1 << 20 {
                    try await writer.write(buffer)
                    buffer.clear()
                }
            }
            if buffer.readableBytes > 0 { try await writer.write(buffer) }
        }
    }

    /// The streams the rows touch and each one's version after them.
    private static func newVersions(of rows: [Row], versions: [String: Int64]) -> ([String], [Int64]) {
        let touched = Array(Set(rows.map(\.stream)))
        return (touched, touched.map { versions[$0] ?? 0 })
    }
}

/// This transaction is older than the one that wrote a stream's newest event; the write is
/// retried in a new transaction (see `streams.last_tx` in `schemas/store/0001_events.sql`).
struct StaleTransaction: Error {
    var stream: String
}

/// PostgreSQL's COPY text format: columns separated by tabs, rows by newlines, and those
/// characters (and the backslash) escaped inside values.
public enum CopyText {
    /// The columns ``writeRow(_:stream:version:to:)`` writes, in order.
    public static let eventColumns = ["event_id", "stream", "version", "type", "schema_version", "data", "metadata"]

    /// One row of the events table (or of a table with the same columns).
    public static func writeRow(_ event: NewEvent, stream: String, version: Int64, to buffer: inout ByteBuffer) {
        buffer.writeString(event.id.uuidString)
        buffer.writeInteger(UInt8(ascii: "\t"))
        writeField(stream, to: &buffer)
        buffer.writeString("\t\(version)\t")
        writeField(event.type, to: &buffer)
        buffer.writeString("\t\(event.schemaVersion)\t")
        writeField(event.data, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
        writeField(event.metadata, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    public static func writeField(_ value: String, to buffer: inout ByteBuffer) {
        let utf8 = value.utf8
        if !utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 < 0x20 }) {
            buffer.writeString(value)
            return
        }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            default: buffer.writeInteger(byte)
            }
        }
    }
}
