import EventStore
import Logging
import PostgresNIO

/// Events of one type from a page, applied with one set-based statement, so a page costs a few
/// round trips, not one per event.
///
/// Statements read the run as `unnest(<data>::jsonb[], <positions>::bigint[]) AS e(data, pos)`;
/// where several events of a run touch the same row, the statement keeps the last one
/// (highest `pos`), so the outcome is the one applying them one by one would give.
public struct EventRun: Sendable {
    public let type: String
    public let data: [String]
    public let positions: [Int64]

    init(type: String, events: some Collection<RecordedEvent>) {
        self.type = type
        self.data = events.map(\.data)
        self.positions = events.map(\.position)
    }

    /// Splits `events` (in log order) into runs, grouping by type where that can't change the
    /// outcome.
    ///
    /// Events of a `barriers` type (rare ones whose effect depends on everything before them,
    /// such as a camera's removal) are applied where they stand in the log. Between two barriers
    /// the other events are grouped by type and the groups applied in `order`: the projection
    /// promises that, between barriers, applying its types in that order gives the log's
    /// outcome (e.g. inserts before updates of other columns). Types not in `order` go last.
    public static func split(
        _ events: [RecordedEvent], barriers: Set<String> = [], order: [String] = []
    )
        -> [EventRun]
    {
        var runs: [EventRun] = []
        var pending: [String: [RecordedEvent]] = [:]
        func flush() {
            let types = order.filter { pending[$0] != nil } + pending.keys.filter { !order.contains($0) }.sorted()
            for type in types { runs.append(EventRun(type: type, events: pending[type]!)) }
            pending.removeAll(keepingCapacity: true)
        }
        var index = events.startIndex
        while index < events.endIndex {
            let event = events[index]
            if barriers.contains(event.type) {
                flush()
                let end = events[index...].firstIndex { $0.type != event.type } ?? events.endIndex
                runs.append(EventRun(type: event.type, events: events[index..<end]))
                index = end
            } else {
                pending[event.type, default: []].append(event)
                index += 1
            }
        }
        flush()
        return runs
    }
}

extension Projection {
    /// Applies `events` run by run (``EventRun/split(_:barriers:order:)``) with the statements
    /// `statements(run)` gives for its type (none: the type needs nothing here).
    public func applyRuns(
        _ events: [RecordedEvent],
        barriers: Set<String> = [],
        order: [String] = [],
        on connection: PostgresConnection,
        logger: Logger,
        statements: (EventRun) -> [PostgresQuery]
    ) async throws {
        for run in EventRun.split(events, barriers: barriers, order: order) {
            for statement in statements(run) {
                try await connection.query(statement, logger: logger)
            }
        }
    }
}
