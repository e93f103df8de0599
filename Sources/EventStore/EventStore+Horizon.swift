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
    /// The transactions holding the horizon, oldest first: while the first one runs, events
    /// committed by any younger transaction can't be read. Only transactions that have an id
    /// (that wrote something) count, read-only ones don't; prepared transactions do (`pid` 0).
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
                WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                UNION ALL
                SELECT 0, database::text, owner::text, 'prepared transaction ' || gid, NULL, 'prepared',
                       extract(epoch FROM now() - prepared)::float8, NULL, age(transaction)
                FROM pg_prepared_xacts
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
