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

/// The transaction id below which a statement reads the log: its *read horizon*.
///
/// Events of transactions below it are final (committed and visible, or never to appear), so
/// a reader that moves its checkpoint past what it saw never skips one. Plainly it is the
/// oldest transaction still running in the cluster, `pg_snapshot_xmin` of the statement's
/// snapshot. A transaction of *another database* of the cluster can't write this log, so a
/// horizon may leave out running transactions positively seen in another database: then it is
/// the oldest of the others (or the snapshot's `xmax` when none is left).
///
/// Those are found in a statement of their own, *before* the reading statement takes its
/// snapshot (``EventStore/foreignTransactions()``). Read after the snapshot (in the same
/// statement), a foreign transaction that ended in between could no longer be placed, would
/// count, and would pull the horizon below a checkpoint an earlier read handed out. Read
/// before, every transaction left out is foreign for good (ids are never reused), and any
/// transaction that counts now but was left out by an earlier read started after that read,
/// so it is above everything that read handed out: the horizon never moves back.
public struct ReadHorizon: Sendable, Equatable {
    /// Running transactions of other databases to leave out (full `xid8` values).
    public let leftOut: [UInt64]

    /// The cluster's horizon, nothing left out.
    public static let plain = ReadHorizon(leftOut: [])

    /// The horizon as an SQL expression (`xid8`) over the statement's snapshot.
    public var sql: String {
        guard !leftOut.isEmpty else { return "pg_snapshot_xmin(pg_current_snapshot())" }
        let list = leftOut.map(String.init).joined(separator: ",")
        return """
            coalesce((SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
                      WHERE x <> ALL ('{\(list)}'::xid8[])),
                     pg_snapshot_xmax(pg_current_snapshot()))
            """
    }

    /// SQL (`boolean`): the transaction `xid` (an `xid8` expression) runs in another database
    /// (`other` true) or in this one, as a session or as a prepared transaction. It calls the
    /// functions behind `pg_stat_activity` and `pg_prepared_xacts`, not the views (their joins
    /// and planning took 0.8 ms a read against 0.4 ms, measured with pgbench).
    static func runs(_ xid: String, inOtherDatabase other: Bool) -> String {
        let compare = other ? "<>" : "="
        return """
            EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a
                    WHERE a.backend_xid = (\(xid))::xid
                      AND a.datid \(compare) (SELECT oid FROM pg_database WHERE datname = current_database())
                    UNION ALL
                    SELECT 1 FROM pg_prepared_xact() p
                    WHERE p.transaction = (\(xid))::xid
                      AND p.dbid \(compare) (SELECT oid FROM pg_database WHERE datname = current_database()))
            """
    }

    /// SQL (`boolean`) for a plain read: committed events wait beyond the cluster's oldest
    /// running transaction, and that one can't be placed in this database, so a narrowed
    /// horizon may read further. When false the plain horizon is the narrowed one: its oldest
    /// transaction is this database's, still running after the snapshot. When true the store
    /// finds the foreign transactions in a statement of their own and reads again: this
    /// statement's activity views are read after its snapshot, so a transaction that ended in
    /// between can't be placed (it may have been left out by an earlier read; going by this
    /// snapshot would move the horizon back).
    static let worthNarrowing = """
        (pg_snapshot_xmin(pg_current_snapshot()) < pg_snapshot_xmax(pg_current_snapshot())
         AND EXISTS (SELECT 1 FROM events e WHERE e.tx_id >= pg_snapshot_xmin(pg_current_snapshot()))
         AND NOT \(runs("pg_snapshot_xmin(pg_current_snapshot())", inOtherDatabase: false)))
        """
}

extension EventStore {
    /// The transactions running in other databases of the cluster now (full `xid8` values),
    /// for a ``ReadHorizon`` of a statement that starts after this one.
    public func foreignTransactions() async throws -> [UInt64] {
        let rows = try await client.guardedQuery(
            """
            SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x
            WHERE \(unescaped: ReadHorizon.runs("x", inOtherDatabase: true))
            """,
            logger: logger
        )
        var transactions: [UInt64] = []
        for try await text in rows.decode(String.self) {
            if let transaction = UInt64(text) { transactions.append(transaction) }
        }
        return transactions
    }

    /// Runs a reading statement with the plain horizon and, when it says a narrowed one may
    /// read further (`narrow`), finds the foreign transactions and runs it again, always: the
    /// first answer is from a snapshot older than that search (even when it finds none, the
    /// transaction that held the plain horizon may have ended since).
    func withReadHorizon<Value>(
        _ read: (ReadHorizon) async throws -> (value: Value, narrow: Bool)
    ) async throws -> Value {
        let plain = try await read(.plain)
        guard plain.narrow else { return plain.value }
        return try await read(ReadHorizon(leftOut: try await foreignTransactions())).value
    }

    /// The transactions holding the horizon, oldest first: while the first one runs, events
    /// committed by any younger transaction can't be read. Only transactions of this database
    /// (see ``ReadHorizon``) that have an id (that wrote something) count, read-only ones
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
