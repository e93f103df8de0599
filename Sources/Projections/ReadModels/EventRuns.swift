import EventStore
import Logging
import PostgresNIO

/// Consecutive events of one type within a page: a projection applies each run with one
/// set-based statement, so a page costs a round trip per run (usually a handful), not per event.
///
/// Statements read the run as `unnest(<data>::jsonb[], <positions>::bigint[]) AS e(data, pos)`;
/// where several events of a run touch the same row, the statement keeps the last one
/// (highest `pos`), so the outcome is the one applying them one by one would give.
public struct EventRun: Sendable {
    public let type: String
    public let data: [String]
    public let positions: [Int64]

    /// Splits `events` (in log order) into runs.
    public static func split(_ events: [RecordedEvent]) -> [EventRun] {
        var runs: [EventRun] = []
        var start = events.startIndex
        while start < events.endIndex {
            let type = events[start].type
            let end = events[start...].firstIndex { $0.type != type } ?? events.endIndex
            let slice = events[start..<end]
            runs.append(EventRun(type: type, data: slice.map(\.data), positions: slice.map(\.position)))
            start = end
        }
        return runs
    }
}

extension Projection {
    /// Applies `events` run by run with the statement `statement(run)` gives for its type (nil:
    /// the type needs nothing here).
    public func applyRuns(
        _ events: [RecordedEvent],
        on connection: PostgresConnection,
        logger: Logger,
        statements: (EventRun) -> [PostgresQuery]
    ) async throws {
        for run in EventRun.split(events) {
            for statement in statements(run) {
                try await connection.query(statement, logger: logger)
            }
        }
    }
}
