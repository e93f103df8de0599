import EventStore
import Logging
import PostgresNIO

/// Where the read models' queries run: the pool, behind the seam. Controllers hold read models
/// (``SecurityEventsReadModel``, ``DetectionsReadModel``, …), never a client; each read model
/// holds this.
public struct ReadDatabase: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The rows of the statement `sql` with its binds.
    func rows(_ sql: SQLBuilder, _ statement: String) async throws -> CollectedRows {
        try await client.guardedQuery(sql.query(statement), logger: logger)
    }

    /// The rows of a statement without dynamic parts.
    func rows(_ query: PostgresQuery) async throws -> CollectedRows {
        try await client.guardedQuery(query, logger: logger)
    }

    /// The text of the first column of the one row the statement `build` writes returns (nil:
    /// no row): JSON rendered by PostgreSQL.
    func json(_ build: (inout SQLBuilder) -> String) async throws -> String? {
        var sql = SQLBuilder()
        let statement = build(&sql)
        for try await item in try await rows(sql, statement).decode(String?.self) { return item }
        return nil
    }
}
