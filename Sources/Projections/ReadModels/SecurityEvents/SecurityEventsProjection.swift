import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO

/// `security_events`: the list behind `/api/events`, searchable, with its visible events per
/// camera and score (`security_event_scores`) for exact counts without a scan.
public struct SecurityEventsProjection: RunBasedProjection {
    public let name = "security_events"
    public let filter = LogFilter(types: [
        SecurityEventOpened.type, SecurityEventClosed.type, SecurityEventAnalyzed.type, SecurityEventReviewed.type,
        CameraRemoved.type, CameraRegistered.type,
    ])
    /// A removal hides what came before it, and what comes while it stands (``RemovedCameras``).
    public let barriers: Set<String> = [CameraRemoved.type, CameraRegistered.type]
    /// 2: `security_event_scores`. 3: `security_event_removed_cameras`.
    public let version: Int32 = 3

    /// Its cameras that stand removed (``RemovedCameras``).
    static let removedCameras = "security_event_removed_cameras"

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        // Between camera removals: an event is opened (inserted) before anything else happens
        // to it, and closing, analysis and review each set columns of their own, each keeping
        // the last per event. So each stretch is applied as: one INSERT of the events opened in
        // it, already closed, analyzed and reviewed as far as the stretch goes (a row is written
        // once, not once per event), then UPDATEs for the other events, by type.
        for segment in segments {
            switch segment {
            case .barrier(let run):
                if run.type == CameraRemoved.type {
                    try await connection.query(CameraTotals.hideRows(run, in: "security_events"), logger: logger)
                    try await connection.query(
                        run.query { "DELETE FROM security_event_scores WHERE camera_id = \(CameraTotals.removed($0))" },
                        logger: logger)
                }
                try await connection.query(RemovedCameras.apply(run, in: Self.removedCameras), logger: logger)
            case .group(let runs):
                let closed = runs[SecurityEventClosed.type] ?? .empty(SecurityEventClosed.type)
                let analyzed = runs[SecurityEventAnalyzed.type] ?? .empty(SecurityEventAnalyzed.type)
                let reviewed = runs[SecurityEventReviewed.type] ?? .empty(SecurityEventReviewed.type)
                var inserted: [Int64] = []
                // Whether the closing and analysis runs hold events of other security events than
                // those just inserted (all of them when nothing was): in a rebuild, nearly never.
                var left = (closed: !closed.isEmpty, analyzed: !analyzed.isEmpty)
                if let opened = runs[SecurityEventOpened.type] {
                    (inserted, left) = try await insert(
                        opened, closed, analyzed, reviewed, on: connection, logger: logger)
                }
                if left.closed {
                    try await update(closed, excluding: inserted, on: connection, logger: logger) { rows, inserted in
                        """
                        UPDATE security_events s SET
                            ended_at = (c.data->>'ended_at')::timestamptz,
                            detection_ids = ARRAY(SELECT jsonb_array_elements_text(c.data->'detection_ids')::bigint),
                            object_types = ARRAY(SELECT jsonb_array_elements_text(c.data->'object_types'))
                        FROM (\(Self.lastPerID(rows))) c
                        WHERE s.id = c.id AND c.id <> ALL (\(inserted)::bigint[])
                        """
                    }
                }
                if left.analyzed {
                    // The visible events' scores move in the histogram: -1 at the old (-1: not
                    // analyzed yet), +1 at the new; the old ones read in the same snapshot.
                    try await update(analyzed, excluding: inserted, on: connection, logger: logger) { rows, inserted in
                        """
                        WITH a AS (\(Self.lastPerID(rows))),
                        old AS (
                            SELECT s.id, s.camera_id, coalesce(s.risk_score, -1) AS score
                            FROM security_events s JOIN a USING (id)
                            WHERE NOT s.hidden AND a.id <> ALL (\(inserted)::bigint[])
                        ),
                        updated AS (
                            UPDATE security_events s SET
                                risk_score = (a.data->>'risk_score')::smallint, summary = a.data->>'summary',
                                reasoning = a.data->>'reasoning', model = a.data->>'model'
                            FROM a
                            WHERE s.id = a.id AND a.id <> ALL (\(inserted)::bigint[])
                            RETURNING s.id, coalesce(s.risk_score, -1) AS score
                        )
                        INSERT INTO security_event_scores (camera_id, score, n)
                        SELECT camera_id, score, sum(delta) FROM (
                            SELECT o.camera_id, o.score, -1 AS delta FROM old o JOIN updated u USING (id)
                            UNION ALL
                            SELECT o.camera_id, u.score, 1 FROM old o JOIN updated u USING (id)
                        ) d
                        GROUP BY 1, 2
                        HAVING sum(delta) <> 0
                        ON CONFLICT (camera_id, score) DO UPDATE SET n = security_event_scores.n + excluded.n
                        """
                    }
                    try await connection.query("DELETE FROM security_event_scores WHERE n = 0", logger: logger)
                }
                if !reviewed.isEmpty {
                    try await update(reviewed, excluding: inserted, on: connection, logger: logger) { rows, inserted in
                        """
                        UPDATE security_events s SET
                            reviewed = coalesce(r.reviewed, s.reviewed),
                            notes = CASE WHEN r.notes_given THEN r.notes ELSE s.notes END
                        FROM (\(Self.reviews(rows))) r
                        WHERE s.id = r.id AND r.id <> ALL (\(inserted)::bigint[])
                        """
                    }
                }
            }
        }
    }

    /// The last event per security event id of a run's rows (``EventRun/rows(_:)``).
    static func lastPerID(_ rows: String) -> String {
        """
        SELECT DISTINCT ON ((data->>'id')::bigint) (data->>'id')::bigint AS id, data
        FROM \(rows) AS e(data, pos)
        ORDER BY (data->>'id')::bigint, pos DESC
        """
    }

    /// Per security event id, the last `reviewed` and the last `notes` given (absent: unchanged;
    /// null: cleared, so `notes_given` tells a null given from none).
    static func reviews(_ rows: String) -> String {
        """
        SELECT (data->>'id')::bigint AS id,
               (array_agg((data->>'reviewed')::boolean ORDER BY pos DESC) FILTER (WHERE data ? 'reviewed'))[1] AS reviewed,
               (array_agg(data->>'notes' ORDER BY pos DESC) FILTER (WHERE data ? 'notes'))[1] AS notes,
               bool_or(data ? 'notes') AS notes_given
        FROM \(rows) AS e(data, pos)
        GROUP BY 1
        """
    }

    /// Inserts the opened events with what the same stretch says about them; returns their ids,
    /// and whether the closing and analysis runs hold events of any other security event (which
    /// the updates after it then apply). Counted, not looked up: an inserted row has an end
    /// (a score) exactly when one of the closings (analyses) was its, each carrying one, and a
    /// lookup between the two sets here was planned as a nested loop over them. A review can't
    /// be told from its row that way; reviews are few, and their update always runs.
    private func insert(
        _ opened: EventRun, _ closed: EventRun, _ analyzed: EventRun, _ reviewed: EventRun,
        on connection: PostgresConnection, logger: Logger
    ) async throws -> (inserted: [Int64], left: (closed: Bool, analyzed: Bool)) {
        var binds = PostgresBindings()
        let (o, c, a) = (opened.rows(&binds), closed.rows(&binds), analyzed.rows(&binds))
        let r = reviewed.rows(&binds)
        let statement = """
            WITH o AS (\(Self.lastPerID(o))), c AS (\(Self.lastPerID(c))), a AS (\(Self.lastPerID(a))),
            r AS (\(Self.reviews(r))),
            inserted AS (
                INSERT INTO security_events (
                    id, camera_id, batch_id, started_at, ended_at, risk_score, summary, reasoning, model,
                    reviewed, notes, detection_ids, object_types, is_fast_path, hidden)
                SELECT o.id, o.data->>'camera_id', o.data->>'batch_id', (o.data->>'started_at')::timestamptz,
                       (c.data->>'ended_at')::timestamptz, (a.data->>'risk_score')::smallint,
                       a.data->>'summary', a.data->>'reasoning', a.data->>'model',
                       coalesce(r.reviewed, false), r.notes,
                       ARRAY(SELECT jsonb_array_elements_text(coalesce(c.data, o.data)->'detection_ids')::bigint),
                       ARRAY(SELECT jsonb_array_elements_text(coalesce(c.data, o.data)->'object_types')),
                       coalesce((o.data->>'is_fast_path')::boolean, false),
                       \(RemovedCameras.isRemoved("o.data->>'camera_id'", in: Self.removedCameras))
                FROM o LEFT JOIN c USING (id) LEFT JOIN a USING (id) LEFT JOIN r USING (id)
                ON CONFLICT (id) DO NOTHING
                RETURNING id, camera_id, coalesce(risk_score, -1) AS score, ended_at IS NOT NULL AS ended, hidden
            ),
            scores AS (
                INSERT INTO security_event_scores (camera_id, score, n)
                SELECT camera_id, score, count(*) FROM inserted WHERE NOT hidden GROUP BY 1, 2
                ON CONFLICT (camera_id, score) DO UPDATE SET n = security_event_scores.n + excluded.n
            )
            SELECT ARRAY(SELECT id FROM inserted),
                   (SELECT count(*) FROM c) > (SELECT count(*) FROM inserted WHERE ended),
                   (SELECT count(*) FROM a) > (SELECT count(*) FROM inserted WHERE score >= 0)
            """
        let rows = try await connection.query(PostgresQuery(unsafeSQL: statement, binds: binds), logger: logger)
        var answer: (inserted: [Int64], left: (closed: Bool, analyzed: Bool)) = ([], (true, true))
        for try await (ids, closed, analyzed) in rows.decode(([Int64], Bool, Bool).self) {
            answer = (ids, (closed, analyzed))
        }
        return answer
    }

    /// Runs the statement `sql` makes of a run's rows (``EventRun/rows(_:)``) and of the
    /// parameter holding the ids just inserted (already up to date).
    private func update(
        _ run: EventRun, excluding inserted: [Int64], on connection: PostgresConnection, logger: Logger,
        _ sql: (_ rows: String, _ inserted: String) -> String
    ) async throws {
        var binds = PostgresBindings()
        let rows = run.rows(&binds)
        binds.append(inserted)
        try await connection.query(PostgresQuery(unsafeSQL: sql(rows, "$\(binds.count)"), binds: binds), logger: logger)
    }
}
