import EventStore
import PostgresNIO

/// One table of a read model's live generation, summed up: two stores whose read models hold
/// the same rows have the same checksums (what `vigil projections checksum` prints, to compare
/// a store with its copy after `vigil export`/`vigil import`, or a rebuild with what it replaced).
public struct ReadModelTableChecksum: Sendable, Hashable {
    public var projection: String
    public var table: String
    public var rows: Int64
    /// md5 of every row (all columns, as text), in text order.
    public var md5: String
}

extension EventStore {
    /// The checksum of every table of every read model's live generation, by projection and
    /// table name. A read model that has not run yet is left out.
    public func readModelChecksums() async throws -> [ReadModelTableChecksum] {
        let statuses = try await projectionStatuses()
        var checksums: [ReadModelTableChecksum] = []
        for projection in ReadModels.all {
            guard let status = statuses.first(where: { $0.name == projection.name }) else { continue }
            let schema = projection.schema(generation: status.generation)
            let tables = try await client.guardedQuery(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = \(schema) ORDER BY tablename",
                logger: logger
            ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
            for table in tables {
                let rows = try await client.guardedQuery(
                    """
                    SELECT count(*), coalesce(md5(string_agg(row, E'\\n' ORDER BY row)), md5(''))
                    FROM (SELECT t::text AS row FROM "\(unescaped: schema)"."\(unescaped: table)" t) AS rows
                    """,
                    logger: logger)
                for try await (count, md5) in rows.decode((Int64, String).self) {
                    checksums.append(
                        ReadModelTableChecksum(projection: projection.name, table: table, rows: count, md5: md5))
                }
            }
        }
        return checksums
    }
}
