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

    /// Splits `events` (in log order) into runs: ``segments(_:barriers:)`` flattened, each
    /// group's runs by type name. For projections whose event types commute between barriers; one
    /// that needs its types in some order walks the segments itself (`security_events`).
    public static func split(_ events: [RecordedEvent], barriers: Set<String> = []) -> [EventRun] {
        segments(events, barriers: barriers).flatMap { segment -> [EventRun] in
            switch segment {
            case .barrier(let run): return [run]
            case .group(let runs):
                return runs.keys.sorted().map { runs[$0]! }
            }
        }
    }

    /// A stretch of a page: the events between two barriers, by type, or a run of barriers.
    public enum Segment: Sendable {
        case group([String: EventRun])
        case barrier(EventRun)
    }

    /// Cuts `events` at the events of a `barriers` type — rare ones whose effect depends on
    /// everything before them, such as a camera's removal — which are applied where they stand
    /// in the log. Between two barriers the other events are grouped by type: the projection
    /// promises that some order of the types gives the log's outcome (e.g. inserts before
    /// updates of other columns).
    public static func segments(_ events: [RecordedEvent], barriers: Set<String> = []) -> [Segment] {
        var segments: [Segment] = []
        var pending: [String: [RecordedEvent]] = [:]
        func flush() {
            guard !pending.isEmpty else { return }
            segments.append(.group(pending.mapValues { EventRun(type: $0[0].type, events: $0) }))
            pending.removeAll(keepingCapacity: true)
        }
        var index = events.startIndex
        while index < events.endIndex {
            let event = events[index]
            if barriers.contains(event.type) {
                flush()
                let end = events[index...].firstIndex { $0.type != event.type } ?? events.endIndex
                segments.append(.barrier(EventRun(type: event.type, events: events[index..<end])))
                index = end
            } else {
                pending[event.type, default: []].append(event)
                index += 1
            }
        }
        flush()
        return segments
    }
}

extension Projection {
    /// Applies `events` run by run (``EventRun/split(_:barriers:)``) with the statements
    /// `statements(run)` gives for its type (none: the type needs nothing here).
    public func applyRuns(
        _ events: [RecordedEvent],
        barriers: Set<String> = [],
        on connection: PostgresConnection,
        logger: Logger,
        statements: (EventRun) -> [PostgresQuery]
    ) async throws {
        for run in EventRun.split(events, barriers: barriers) {
            for statement in statements(run) {
                try await connection.query(statement, logger: logger)
            }
        }
    }
}
