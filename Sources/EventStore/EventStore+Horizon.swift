import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A session whose transaction holds the log's read horizon back.
public struct HorizonHolder: Sendable, Hashable {
    public var pid: Int32
    public var database: String?
    public var user: String?
    public var application: String?
    public var clientAddress: String?
    public var state: String?
    /// Seconds since its transaction began.
    public var transactionAge: Double
    /// The start of its current query, truncated.
    public var query: String?
}

/// The transaction id below which a statement reads the log: its *read horizon*.
///
/// Events of transactions below it are final (committed and visible, or never to appear), so
/// a reader that moves its checkpoint past what it saw never skips one. Plainly it is the
/// oldest transaction still running in the cluster, `pg_snapshot_xmin` of the statement's
/// snapshot. Some transactions can't write this log: those of *another database* of the
/// cluster, and those of a session marked as a read model's runner
/// (``readModelApplication``: it writes read-model tables only, and the log refuses its
/// inserts, `schemas/store/0008_read_model_sessions.sql`). A horizon may leave out running
/// transactions positively seen as either: then it is the oldest of the others (or the
/// snapshot's `xmax` when none is left). So a read model's batch, however long (a rebuild's),
/// holds no tail back.
///
/// Those are found in a statement of their own, *before* the reading statement takes its
/// snapshot (``EventStore/placeRunningTransactions()``). Read after the snapshot (in the same
/// statement), a foreign transaction that ended in between could no longer be placed, would
/// count, and would pull the horizon below a checkpoint an earlier read handed out. Read
/// before, every transaction left out is left out for good (ids are never reused, a session is
/// marked or unmarked only between its transactions), and any transaction that counts now but
/// was left out by an earlier read started after that read, so it is above everything that read
/// handed out: the horizon never moves back.
public struct ReadHorizon: Sendable, Equatable {
    /// The `application_name` of a session that runs a read model's batches (never a
    /// reactor's: those append events).
    public static let readModelApplication = "vigil read model"

    /// Running transactions to leave out (full `xid8` values): other databases', and read
    /// models' runners'.
    public let leftOut: [UInt64]

    /// The cluster's horizon, nothing left out.
    public static let plain = ReadHorizon(leftOut: [])

    /// The horizon as an SQL expression (`xid8`) over the statement's snapshot:
    /// `vigil_read_horizon` (schemas/store/0013_read_log_kept_plans.sql), the one place its rule
    /// is written, which the log's read calls too.
    public var sql: String {
        "public.vigil_read_horizon('{\(leftOutText.joined(separator: ","))}'::xid8[])"
    }

    /// ``leftOut`` as a `text[]` to bind (cast to `xid8[]` in the statement).
    var leftOutText: [String] { leftOut.map(String.init) }

    /// SQL (one row per running transaction of the statement's snapshot): its `xid8` as text
    /// and whether it counts (`true`: it runs in this database and may write the log), is left
    /// out (`false`: another database's, or a read model runner's) or can't be placed (`NULL`:
    /// it ended after the snapshot, or has no database). It calls the functions behind
    /// `pg_stat_activity` and `pg_prepared_xacts`, not the views (0.4 ms against 0.8 ms).
    static let placeRunning = """
        SELECT x::text, bool_or(a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
                                AND a.application IS DISTINCT FROM '\(readModelApplication)')
        FROM pg_snapshot_xip(pg_current_snapshot()) AS x
        LEFT JOIN (SELECT backend_xid AS xid, datid, application_name AS application
                   FROM pg_stat_get_activity(NULL) WHERE backend_xid IS NOT NULL
                   UNION ALL
                   SELECT transaction, dbid, NULL FROM pg_prepared_xact()) AS a ON a.xid = x::xid
        GROUP BY x
        """

    /// SQL (`text` or `NULL`): for the plain horizon, the cluster's oldest running transaction
    /// when committed events wait beyond it (a narrowed horizon might read further); else, and
    /// for a narrowed horizon (already final), `NULL`.
    ///
    /// "Events wait beyond it" is asked of the newest visible event (a backward step of the
    /// log-order index), not as `EXISTS (… WHERE tx_id >= xmin)`: the planner can't know that
    /// bound, guesses a third of the table matches, and on a table whose statistics lag (a
    /// fresh or fast-growing log) chose a sequential scan that read the whole log up to its
    /// newest rows, on every read of every tail while any transaction ran (5 ms per read at
    /// 20,000 events, growing with the log).
    var stalledSQL: String { leftOut.isEmpty ? Self.stalled : "NULL::text" }

    private static let stalled = """
        (SELECT CASE WHEN pg_snapshot_xmin(s) < pg_snapshot_xmax(s)
                      AND (SELECT e.tx_id FROM events e ORDER BY e.tx_id DESC, e.position DESC LIMIT 1)
                          >= pg_snapshot_xmin(s)
                     THEN pg_snapshot_xmin(s)::text END
         FROM (SELECT pg_current_snapshot() AS s) AS snap)
        """
}

/// What a plain read says about its horizon (see ``EventStore/withReadHorizon(_:)``).
enum HorizonStall {
    /// Nothing waits beyond it: the answer is final.
    case none
    /// Events wait beyond the cluster's oldest running transaction, this one.
    case at(UInt64)
    /// The checkpoint read after is not below it: look at a narrowed horizon before refusing.
    case beyond
}

/// Running transactions seen to count (this database's, not a read model runner's). A
/// transaction's database never changes, a session's mark only between its transactions, and
/// ids aren't reused, so what was seen once holds for good. Bounded.
final class TransactionPlaces: Sendable {
    private let own = Mutex(Set<UInt64>())

    func isOwn(_ transaction: UInt64) -> Bool { own.withLock { $0.contains(transaction) } }

    func recordOwn(_ transactions: [UInt64]) {
        own.withLock { set in
            if set.count + transactions.count > 100_000 { set.removeAll(keepingCapacity: true) }
            set.formUnion(transactions)
        }
    }
}

extension EventStore {
    /// The running transactions of the cluster placed now: those that count (this database's,
    /// not read models' runners') and those left out (other databases', read models' runners')
    /// (full `xid8` values). Those that can't be placed are in neither.
    func placeRunningTransactions(
        on connection: PostgresConnection? = nil
    ) async throws -> (own: [UInt64], foreign: [UInt64]) {
        let rows = try await client.guardedQuery(
            PostgresQuery(unsafeSQL: ReadHorizon.placeRunning), on: connection, logger: logger)
        var (own, foreign): ([UInt64], [UInt64]) = ([], [])
        for try await (text, isOwn) in rows.decode((String, Bool?).self) {
            guard let transaction = UInt64(text), let isOwn else { continue }
            if isOwn { own.append(transaction) } else { foreign.append(transaction) }
        }
        return (own, foreign)
    }

    /// The transactions running now that a horizon leaves out (other databases', read models'
    /// runners'; full `xid8` values), for a ``ReadHorizon`` of a statement that starts after
    /// this one.
    public func foreignTransactions() async throws -> [UInt64] {
        try await placeRunningTransactions().foreign
    }

    /// Runs a reading statement with the plain horizon; when events wait beyond it, the answer
    /// is final only if the oldest running transaction is positively this database's (seen so
    /// once, which holds for good: ``TransactionPlaces``). Otherwise it places the running
    /// transactions in a statement of its own and runs the read again with the foreign ones
    /// left out, always: the first answer is from a snapshot older than that search (the
    /// transaction that held the plain horizon may have ended since).
    ///
    /// `connection`: the placing statement runs on it rather than on a pooled one.
    func withReadHorizon<Value>(
        on connection: PostgresConnection? = nil,
        _ read: (ReadHorizon) async throws -> (value: Value, stall: HorizonStall)
    ) async throws -> Value {
        let plain = try await read(.plain)
        let stalledAt: UInt64?
        switch plain.stall {
        case .none: return plain.value
        case .at(let transaction):
            if places.isOwn(transaction) { return plain.value }
            stalledAt = transaction
        case .beyond: stalledAt = nil
        }
        let running = try await placeRunningTransactions(on: connection)
        places.recordOwn(running.own)
        if let stalledAt, running.own.contains(stalledAt) { return plain.value }
        return try await read(ReadHorizon(leftOut: running.foreign)).value
    }

    /// The transactions holding the horizon, oldest first: while the first one runs, events
    /// committed by any younger transaction can't be read. Only transactions of this database
    /// (see ``ReadHorizon``) that have an id (that wrote something) count, read-only ones
    /// and read models' runners' don't; prepared transactions do (`pid` 0).
    public func horizonHolders(limit: Int = 5) async throws -> [HorizonHolder] {
        let rows = try await client.guardedQuery(
            """
            SELECT pid, database, username, application, address, state, transaction_age, query
            FROM (
                SELECT pid, datname::text AS database, usename::text AS username,
                       application_name AS application, client_addr::text AS address, state,
                       coalesce(extract(epoch FROM now() - xact_start), 0)::float8 AS transaction_age,
                       left(query, 200) AS query, age(backend_xid) AS xid_age
                FROM pg_stat_activity
                WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
                  AND application_name IS DISTINCT FROM \(ReadHorizon.readModelApplication)
                UNION ALL
                SELECT 0, database::text, owner::text, 'prepared transaction ' || gid, NULL, 'prepared',
                       extract(epoch FROM now() - prepared)::float8, NULL, age(transaction)
                FROM pg_prepared_xacts WHERE database = current_database()
            ) AS holders
            ORDER BY xid_age DESC
            LIMIT \(limit)
            """,
            logger: logger
        )
        var holders: [HorizonHolder] = []
        for try await (pid, database, user, application, address, state, age, query) in rows.decode(
            (Int32, String?, String?, String?, String?, String?, Double, String?).self
        ) {
            holders.append(
                HorizonHolder(
                    pid: pid,
                    database: database,
                    user: user,
                    application: application,
                    clientAddress: address,
                    state: state,
                    transactionAge: age,
                    query: query
                )
            )
        }
        return holders
    }
}
