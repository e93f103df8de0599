import Foundation
import Logging
import PostgresNIO

/// The group commit's common batch in one statement, one round trip (ARCHITECTURE, "One round
/// trip for the common batch"); ``LogWriter/write(_:method:on:logger:)`` stays the one place
/// that decides, and this defers to it whenever it could decide otherwise.
extension LogWriter {
    /// Whether ``writeInOneStatement(_:on:logger:)`` may write `requests`: each expects nothing
    /// of its stream's version (``ExpectedVersion/any``), has events and passes the checks every
    /// request must, and no event id appears twice in the batch. Otherwise only the full path
    /// (``write(_:method:on:logger:)``) decides.
    static func fitsOneStatement(_ requests: [AppendRequest]) -> Bool {
        var ids = Set<UUID>()
        for request in requests {
            guard request.expected == .any, !request.events.isEmpty, validate(request) == nil else { return false }
            for event in request.events {
                guard ids.insert(event.id).inserted else { return false }
            }
        }
        return !requests.isEmpty
    }

    /// Writes `requests` as one statement on a connection outside any transaction (the
    /// statement is its own): one round trip where the full path makes five (issue 14; the
    /// prototype's figures are in docs/BENCHMARKS.md, Ingest, session 41). Only for requests
    /// that ``fitsOneStatement(_:)``; every one is accepted, its events numbered after its
    /// stream's version in the order given, as ``decide`` would.
    ///
    /// It writes nothing, and fails with ``deferring(_:)``'s errors, whenever the full path
    /// could decide otherwise: an event id already stored (an idempotent retry, or a clash), an
    /// archived stream, a stream last written by a younger transaction (see
    /// ``lockStreams(_:on:logger:)``), or an event id a concurrent writer stored after this
    /// statement's snapshot (the unique index). The caller then runs the full path.
    static func writeInOneStatement(
        _ requests: [AppendRequest], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<AppendResult, AppendError>] {
        var (ids, streams, types, schemaVersions, data, metadata) = (
            [UUID](), [String](), [String](), [Int32](), [String](), [String]()
        )
        for request in requests {
            for event in request.events {
                ids.append(event.id)
                streams.append(request.stream)
                types.append(event.type)
                schemaVersions.append(event.schemaVersion)
                data.append(event.data)
                metadata.append(event.metadata)
            }
        }
        // `vigil_append_batch` (schemas/store/0013_read_log_kept_plans.sql): the statement as a
        // function whose plan is kept; planning it at every call cost a quarter of running it.
        let rows = try await connection.guardedPreparedQuery(
            """
            SELECT event_id, tx, position, version
            FROM public.vigil_append_batch(
                \(ids)::uuid[], \(streams)::text[], \(types)::text[], \(schemaVersions)::int4[], \(data)::text[],
                \(metadata)::text[])
            """,
            logger: logger)
        var written: [UUID: (checkpoint: Checkpoint, version: Int64)] = [:]
        written.reserveCapacity(ids.count)
        for try await (id, transaction, position, version) in rows.decode((UUID, String, Int64, Int64).self) {
            written[id] = (Checkpoint(transactionText: transaction, position: position), version)
        }
        guard written.count == ids.count else { throw OneStatementMismatch(written: written.count, given: ids.count) }
        return requests.map { request in
            let events = request.events.compactMap { written[$0.id] }
            return .success(
                AppendResult(
                    stream: request.stream, version: events.last?.version ?? 0, checkpoints: events.map(\.checkpoint),
                    wasAlreadyStored: false))
        }
    }

    /// Whether `error` is ``writeInOneStatement(_:on:logger:)`` deferring to the full path
    /// (its refusal, or an event id stored meanwhile): nothing was written.
    static func deferring(_ error: any Error) -> Bool {
        guard let state = (error as? PSQLError)?.serverInfo?[.sqlState] else { return false }
        return state == "P0V01" || state == "23505"
    }
}

/// The one-statement append returned other rows than it was given events: it numbers every
/// event from its stream's row, so this is a bug, said loudly.
struct OneStatementMismatch: Error, CustomStringConvertible {
    var written: Int
    var given: Int

    var description: String { "the one-statement append wrote \(written) of \(given) events" }
}
