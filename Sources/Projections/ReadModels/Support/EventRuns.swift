import EventStore
import Foundation
import Logging
import PostgresNIO

/// Events of one type from a page, applied with one set-based statement, so a page costs a few
/// round trips, not one per event.
///
/// Statements read the run as rows `(data jsonb, pos bigint, recorded_at timestamptz)`
/// (``rows(_:)``: `FROM <rows> AS e(data, pos)`, or `e(data, pos, recorded_at)` for a statement
/// that needs when the log took each event); where several events of a run touch the same row, the
/// statement keeps the last one (highest `pos`), so the outcome is the one applying them one by
/// one would give. The rows come either with the statement (the events' data, bound as arrays)
/// or from the log table itself (a stretch of the log between two checkpoints, read on the
/// server: a rebuild never brings its events into Swift and back, and a live batch has
/// PostgreSQL parse no payload again). The statement is the same.
public struct EventRun: Sendable {
    public let type: String
    /// How many events of `type` the run holds.
    public let count: Int
    let source: Source

    enum Source: Sendable {
        /// The events' data, positions and recording times, sent with the statement.
        case values(data: [String], positions: [Int64], recordedAt: [Date])
        /// The events of `type` in the log after one checkpoint up to (and with) another, whose
        /// positions lie in `positions` (the run's own: a bound the planner can estimate, where
        /// it can't estimate the checkpoints' row comparison and would scan the whole log).
        case log(after: Checkpoint, through: Checkpoint, positions: ClosedRange<Int64>)
    }

    init(type: String, events: some Collection<RecordedEvent>) {
        self.type = type
        self.count = events.count
        self.source = .values(
            data: events.map(\.data), positions: events.map(\.position), recordedAt: events.map(\.recordedAt))
    }

    init(type: String, events: some Collection<RecordedEvent>, after start: Checkpoint, through end: Checkpoint) {
        self.type = type
        self.count = events.count
        let positions = events.map(\.position)
        self.source = .log(after: start, through: end, positions: (positions.min() ?? 0)...(positions.max() ?? 0))
    }

    /// A run of no events.
    public static func empty(_ type: String) -> EventRun { EventRun(type: type, events: [RecordedEvent]()) }

    public var isEmpty: Bool { count == 0 }

    /// The SQL of the run's rows `(data, pos)`, to use as `FROM <rows> AS e(data, pos)`; the
    /// values it needs are appended to `binds` (as `$n` after those already there).
    public func rows(_ binds: inout PostgresBindings) -> String {
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        switch source {
        case .values(let data, let positions, let recordedAt):
            return "unnest(\(bind(data))::jsonb[], \(bind(positions))::bigint[], \(bind(recordedAt))::timestamptz[])"
        case .log(let start, let end, let positions):
            // The checkpoints bound the stretch; every event in it of another type the
            // projection reads belongs to another run. Below the read horizon (where the page
            // was read), no event can join the stretch later. The positions (a primary-key
            // range) are what the planner goes by: the checkpoints are sub-selects so that it
            // can't estimate them. As constants, two checkpoints of one transaction (a bulk
            // append, an import) made it estimate one row, and a statement joining two runs
            // then took a nested loop over them (1.1 s for a rebuild's batch of
            // `security_events` instead of 0.15; docs/BENCHMARKS.md, Reading, session 43).
            return """
                (SELECT l.data, l.position, l.recorded_at FROM public.events l
                 WHERE l.position BETWEEN \(bind(positions.lowerBound)) AND \(bind(positions.upperBound))
                   AND (l.tx_id, l.position) > (SELECT \(bind(String(start.transactionID)))::text::xid8, \(bind(start.position))::int8)
                   AND (l.tx_id, l.position) <= (SELECT \(bind(String(end.transactionID)))::text::xid8, \(bind(end.position))::int8)
                   AND l.type = \(bind(type)))
                """
        }
    }

    /// A statement over the run: `sql` gets the SQL of its rows (``rows(_:)``).
    public func query(_ sql: (_ rows: String) -> String) -> PostgresQuery {
        var binds = PostgresBindings()
        let rows = rows(&binds)
        return PostgresQuery(unsafeSQL: sql(rows), binds: binds)
    }

    /// Splits `events` (in log order) into runs: ``segments(_:barriers:readingLogAfter:)``
    /// flattened, each group's runs by type name. For projections whose event types commute
    /// between barriers; one that needs its types in some order walks the segments itself
    /// (`security_events`).
    public static func split(_ events: [RecordedEvent], barriers: Set<String> = []) -> [EventRun] {
        flatten(segments(events, barriers: barriers))
    }

    /// The runs of `segments`, in order; each group's runs by type name.
    public static func flatten(_ segments: [Segment]) -> [EventRun] {
        segments.flatMap { segment -> [EventRun] in
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
    ///
    /// `readingLogAfter`: the runs read their rows from the log table (``rows(_:)``), each
    /// between the checkpoints around its stretch, instead of carrying the events' data (which
    /// may then be empty: ``EventStore/read(after:filter:limit:bodies:)``). `events` must be a
    /// whole page of the projection's filter read after that checkpoint, so that no event of a
    /// type the projection reads lies in a stretch without being in it.
    public static func segments(
        _ events: [RecordedEvent], barriers: Set<String> = [], readingLogAfter start: Checkpoint? = nil
    ) -> [Segment] {
        var segments: [Segment] = []
        var pending: [String: [RecordedEvent]] = [:]
        var stretchStart = start
        func run(_ type: String, _ slice: some Collection<RecordedEvent>, through end: Checkpoint) -> EventRun {
            guard let after = stretchStart else { return EventRun(type: type, events: slice) }
            return EventRun(type: type, events: slice, after: after, through: end)
        }
        func flush(through end: Checkpoint?) {
            guard !pending.isEmpty, let end else { return }
            segments.append(.group(pending.mapValues { run($0[0].type, $0, through: end) }))
            pending.removeAll(keepingCapacity: true)
            if stretchStart != nil { stretchStart = end }
        }
        var index = events.startIndex
        while index < events.endIndex {
            let event = events[index]
            if barriers.contains(event.type) {
                flush(through: index > events.startIndex ? events[index - 1].checkpoint : nil)
                let end = events[index...].firstIndex { $0.type != event.type } ?? events.endIndex
                let last = events[end - 1].checkpoint
                segments.append(.barrier(run(event.type, events[index..<end], through: last)))
                if stretchStart != nil { stretchStart = last }
                index = end
            } else {
                pending[event.type, default: []].append(event)
                index += 1
            }
        }
        flush(through: events.last?.checkpoint)
        return segments
    }
}

/// A projection that applies a page as runs of one event type (``EventRun``) whose statements
/// read the run's rows in SQL (``EventRun/rows(_:)``), never the events' data in Swift. Its
/// runner can then leave a rebuild's events on the server: the pages it reads are only
/// checkpoints and types, and the statements read the log table over each stretch.
public protocol RunBasedProjection: Projection {
    /// Event types applied where they stand in the log (``EventRun/segments(_:barriers:readingLogAfter:)``).
    var barriers: Set<String> { get }
    /// Applies the segments of one page, in order.
    func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws
}

extension RunBasedProjection {
    public var barriers: Set<String> { [] }

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        try await apply(EventRun.segments(events, barriers: barriers), on: connection, logger: logger)
    }

    /// Applies `segments` run by run (``EventRun/flatten(_:)``) with the statements
    /// `statements(run)` gives for its type (none: the type needs nothing here).
    public func applyRuns(
        _ segments: [EventRun.Segment],
        on connection: PostgresConnection,
        logger: Logger,
        statements: (EventRun) -> [PostgresQuery]
    ) async throws {
        for run in EventRun.flatten(segments) {
            for statement in statements(run) {
                try await connection.preparedQuery(statement, logger: logger)
            }
        }
    }
}
