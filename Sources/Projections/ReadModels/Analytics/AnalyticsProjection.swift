import Domain
import EventStore
import Logging
import PostgresNIO

/// `analytics`: the facts behind `/api/analytics/*` and the severity preview, by UTC day —
/// detections per camera and object type, and risk-score histograms (per camera and score, per
/// day and over all history). Levels are not stored: they come out of the histograms at query
/// time under whatever thresholds are asked for, so a threshold change shows at once.
///
/// Each security event's current score is kept (`analytics_events`), so a new analysis of an
/// event moves it from its old score to the new one in the histograms.
public struct AnalyticsProjection: RunBasedProjection {
    public let name = "analytics"
    public let filter = LogFilter(types: [
        DetectionRecorded.type, SecurityEventOpened.type, SecurityEventAnalyzed.type, CameraRemoved.type,
        CameraRegistered.type,
    ])
    /// A removal drops what came before it, and what comes while it stands is not counted
    /// (``RemovedCameras``).
    public let barriers: Set<String> = [CameraRemoved.type, CameraRegistered.type]
    /// 2: `analytics_removed_cameras`.
    public let version: Int32 = 2
    public var batchInterval: Duration { BatchInterval.background }

    /// Its cameras that stand removed (``RemovedCameras``).
    static let removedCameras = "analytics_removed_cameras"

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        // Between camera removals, detections commute with the rest, and an event is opened
        // before it is analyzed: so opens are applied before analyses.
        for segment in segments {
            switch segment {
            case .barrier(let run):
                if run.type == CameraRemoved.type {
                    for table in [
                        "analytics_detections", "analytics_events", "analytics_scores", "analytics_score_totals",
                    ] {
                        let delete = run.query { "DELETE FROM \(table) WHERE camera_id = \(CameraTotals.removed($0))" }
                        try await answer(delete, on: connection, logger: logger)
                    }
                }
                try await answer(RemovedCameras.apply(run, in: Self.removedCameras), on: connection, logger: logger)
            case .group(let runs):
                if let detections = runs[DetectionRecorded.type] {
                    try await answer(detections.query(Self.countDetections), on: connection, logger: logger)
                }
                let analyzed = runs[SecurityEventAnalyzed.type]
                var analysesLeft = analyzed != nil
                if let opened = runs[SecurityEventOpened.type] {
                    analysesLeft = try await insertEvents(
                        opened, analyzed: analyzed ?? .empty(SecurityEventAnalyzed.type), on: connection, logger: logger
                    )
                }
                if let analyzed, analysesLeft {
                    // Only a score moved down (a re-analysis) can empty a row. The events just
                    // inserted hold their newest score already: the move finds nothing to change.
                    if try await answer(analyzed.query(Self.moveScores), on: connection, logger: logger) {
                        try await answer(analyzed.query(Self.dropEmptyScores), on: connection, logger: logger)
                    }
                }
            }
        }
    }

    static func countDetections(_ rows: String) -> String {
        """
        INSERT INTO analytics_detections (day, camera_id, object_type, detections)
        SELECT ((data->>'detected_at')::timestamptz AT TIME ZONE 'UTC')::date, data->>'camera_id',
               data->>'object_type', count(*)
        FROM \(rows) AS e(data, pos)
        WHERE NOT \(RemovedCameras.isRemoved("data->>'camera_id'", in: Self.removedCameras))
        GROUP BY 1, 2, 3
        ON CONFLICT (day, camera_id, object_type) DO UPDATE
            SET detections = analytics_detections.detections + excluded.detections
        """
    }

    /// Inserts the run's opened events, each with its newest score among `analyzed` (the same
    /// stretch: counted in the histograms here, where a move after the insert would write each
    /// row again — in a rebuild, nearly every event is opened and analyzed in one stretch).
    /// Returns whether `analyzed` holds an analysis of another event (one opened in an earlier
    /// stretch, or already stored): those are ``moveScores(_:)``'. That is
    /// counted, not looked up: an inserted row has a score exactly when one of the analyses was
    /// its (an analysis always carries one), and a lookup between the two sets here was planned
    /// as a nested loop over them (seconds for a rebuild's batch).
    private func insertEvents(
        _ opened: EventRun, analyzed: EventRun, on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        var binds = PostgresBindings()
        let (o, a) = (opened.rows(&binds), analyzed.rows(&binds))
        let statement = """
            WITH latest AS (\(SecurityEventsProjection.lastPerID(a))),
            inserted AS (
                INSERT INTO analytics_events (id, camera_id, day, score)
                SELECT (o.data->>'id')::bigint, o.data->>'camera_id',
                       ((o.data->>'started_at')::timestamptz AT TIME ZONE 'UTC')::date,
                       (l.data->>'risk_score')::smallint
                FROM \(o) AS o(data, pos) LEFT JOIN latest l ON l.id = (o.data->>'id')::bigint
                WHERE NOT \(RemovedCameras.isRemoved("o.data->>'camera_id'", in: Self.removedCameras))
                ON CONFLICT (id) DO NOTHING
                RETURNING id, camera_id, day, score
            ),
            \(Self.addToHistograms(
                "SELECT day, camera_id, score, count(*) FROM inserted WHERE score IS NOT NULL GROUP BY 1, 2, 3"))
            SELECT (SELECT count(*) FROM latest) > (SELECT count(*) FROM inserted WHERE score IS NOT NULL)
            """
        return try await answer(PostgresQuery(unsafeSQL: statement, binds: binds), on: connection, logger: logger)
    }

    /// Each analyzed event's newest score in the run replaces its current one: −1 at the old
    /// score (if it had one), +1 at the new, summed per day, camera and score. Analyses of events
    /// this read model doesn't have (their camera was removed) change nothing. Returns whether
    /// a row lost events (only then can one be empty).
    static func moveScores(_ rows: String) -> String {
        """
        WITH latest AS (\(SecurityEventsProjection.lastPerID(rows))),
        changed AS (
            SELECT e.id, e.camera_id, e.day, e.score AS old, (l.data->>'risk_score')::smallint AS new
            FROM analytics_events e JOIN latest l USING (id)
            WHERE e.score IS DISTINCT FROM (l.data->>'risk_score')::smallint
        ),
        updated AS (
            UPDATE analytics_events e SET score = c.new FROM changed c WHERE e.id = c.id
        ),
        deltas AS (
            SELECT day, camera_id, score, sum(delta) AS delta
            FROM (
                SELECT day, camera_id, old AS score, -1 AS delta FROM changed WHERE old IS NOT NULL
                UNION ALL
                SELECT day, camera_id, new, 1 FROM changed
            ) d
            GROUP BY 1, 2, 3
            HAVING sum(delta) <> 0
        ),
        \(addToHistograms("SELECT day, camera_id, score, delta FROM deltas"))
        SELECT EXISTS (SELECT 1 FROM deltas WHERE delta < 0)
        """
    }

    /// The last CTEs of a statement that adds `changes` (a query of rows `(day, camera_id,
    /// score, delta)`, one per day, camera and score) to the per-day histograms and the totals.
    static func addToHistograms(_ changes: String) -> String {
        """
        histogram_changes (day, camera_id, score, delta) AS (\(changes)),
        days AS (
            INSERT INTO analytics_scores (day, camera_id, score, events)
            SELECT day, camera_id, score, delta FROM histogram_changes
            ON CONFLICT (day, camera_id, score) DO UPDATE SET events = analytics_scores.events + excluded.events
        ),
        totals AS (
            INSERT INTO analytics_score_totals (camera_id, score, events)
            SELECT camera_id, score, sum(delta) FROM histogram_changes GROUP BY 1, 2
            ON CONFLICT (camera_id, score) DO UPDATE SET events = analytics_score_totals.events + excluded.events
        )
        """
    }

    /// Deletes the histogram rows that analyses of a run emptied (moved down to 0 events): a
    /// score no event has is no row. Otherwise the rows would depend on the batching: an event
    /// opened, analyzed and analyzed again within one batch never gives its earlier score a
    /// row, and a rebuild (batched differently) would not hold the same rows as the live one.
    static func dropEmptyScores(_ rows: String) -> String {
        """
        WITH touched AS (
            SELECT DISTINCT e.day, e.camera_id FROM analytics_events e
            WHERE e.id IN (SELECT (data->>'id')::bigint FROM \(rows) AS u(data, pos))
        ),
        days AS (
            DELETE FROM analytics_scores s USING touched t
            WHERE s.day = t.day AND s.camera_id = t.camera_id AND s.events = 0
        )
        DELETE FROM analytics_score_totals s
        WHERE s.events = 0 AND s.camera_id IN (SELECT camera_id FROM touched)
        """
    }

    /// Runs `query` (a statement over a run: ``EventRun/query(_:)``); the boolean its one row
    /// returns, if it returns one.
    @discardableResult
    private func answer(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> Bool
    {
        let rows = try await connection.preparedQuery(query, logger: logger)
        var answer = false
        for try await value in rows.decode(Bool.self) { answer = value }
        return answer
    }
}
