import Foundation
import Logging
import PostgresNIO

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

extension EventStore {
    /// The log's read horizon: an SQL expression (`xid8`) over the statement's snapshot. Events
    /// of transactions below it are final (committed and visible, or never to appear); readers
    /// read only those, so moving a checkpoint past what they saw never skips an event.
    ///
    /// It is the oldest transaction still running *in this database* (or the snapshot's `xmax`
    /// when there is none): a transaction of another database of the cluster can't write this
    /// log, so it doesn't hold readers back (SQLStreamStore narrows its horizon the same way).
    /// Only transactions positively seen in another database (`pg_stat_activity`, or
    /// `pg_prepared_xacts`) are left out; one that can't be placed (it ended after the snapshot,
    /// say) still counts, which errs on the side of waiting. A running `xid8` is matched on its
    /// 32-bit `xid`: the running transactions span less than 2³¹ ids, so that is unique.
    ///
    /// Cheap when nothing waits: the activity views are only read when some event was committed
    /// at or beyond the oldest running transaction of the cluster. Every reader of the log
    /// (``read(after:filter:limit:)``, ``head()``, projection status) uses this one expression.
    public static let readHorizon = """
        (SELECT CASE
            WHEN NOT EXISTS (SELECT 1 FROM events e WHERE e.tx_id >= pg_snapshot_xmin(s.snap))
                THEN pg_snapshot_xmin(s.snap)
            ELSE coalesce(
                (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x
                 WHERE NOT EXISTS (
                         SELECT 1 FROM pg_stat_activity a
                         WHERE a.backend_xid::text = (x::text::numeric % 4294967296)::text
                           AND a.datname IS DISTINCT FROM current_database())
                   AND NOT EXISTS (
                         SELECT 1 FROM pg_prepared_xacts p
                         WHERE p.transaction::text = (x::text::numeric % 4294967296)::text
                           AND p.database <> current_database())),
                pg_snapshot_xmax(s.snap))
            END
         FROM (SELECT pg_current_snapshot() AS snap) AS s)
        """

    /// The transactions holding the horizon, oldest first: while the first one runs, events
    /// committed by any younger transaction can't be read. Only transactions of this database
    /// (see ``readHorizon``) that have an id (that wrote something) count, read-only ones
    /// don't; prepared transactions do (`pid` 0).
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
