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
    /// The sessions with an open transaction, oldest first: the first one is what holds the
    /// horizon (events committed after it started can't be read until it ends). Prepared
    /// transactions count too (`pid` 0).
    public func horizonHolders(limit: Int = 5) async throws -> [HorizonHolder] {
        let rows = try await client.query(
            """
            SELECT pid, datname::text, usename::text, application_name, client_addr::text, state,
                   extract(epoch FROM now() - xact_start)::float8, left(query, 200)
            FROM pg_stat_activity
            WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
              AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
            UNION ALL
            SELECT 0, database::text, owner::text, 'prepared transaction ' || gid, NULL, 'prepared',
                   extract(epoch FROM now() - prepared)::float8, NULL
            FROM pg_prepared_xacts
            ORDER BY 7 DESC
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
