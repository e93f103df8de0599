import Foundation
import PostgresNIO

/// The system's figures (`/api/system/stats`, `/storage`, `/telemetry`, `/pipeline-latency`):
/// the pipeline's stage latencies from the `pipeline` read model (``PipelineProjection``), counts
/// from the other read models' totals, sizes from PostgreSQL.
public struct PipelineReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    /// One stage's samples (milliseconds, column `ms`) as `{avg_ms, min_ms, max_ms, p50_ms, p95_ms,
    /// p99_ms, sample_count}`, or null when there are none.
    static func stats(_ samples: String) -> String {
        func rounded(_ expression: String) -> String { "round((\(expression))::numeric, 3)" }
        return """
            (SELECT CASE WHEN count(*) = 0 THEN NULL ELSE json_build_object(
                'avg_ms', \(rounded("avg(ms)")), 'min_ms', \(rounded("min(ms)")), 'max_ms', \(rounded("max(ms)")),
                'p50_ms', \(rounded("percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)")),
                'p95_ms', \(rounded("percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)")),
                'p99_ms', \(rounded("percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)")),
                'sample_count', count(*)) END
             FROM (\(samples)) AS s WHERE ms IS NOT NULL)
            """
    }

    static func milliseconds(_ later: String, _ earlier: String) -> String {
        "extract(epoch FROM \(later) - \(earlier)) * 1000"
    }

    /// The stages whose end lies at or after `since`, by name: `watch_to_detect` (a detection's
    /// own time to the log's), `detect_to_batch` (recorded to its security event's close),
    /// `batch_to_analyze` (close to first analysis), `total_pipeline` (the event's first
    /// detection's own time to its first analysis). JSON object text.
    public func latencies(since: Date) async throws -> String {
        try await database.json { sql in
            let since = sql.bind(since)
            let watch = """
                SELECT \(Self.milliseconds("d.recorded_at", "d.detected_at")) AS ms
                FROM pipeline_detections d WHERE d.recorded_at >= \(since)
                """
            let batch = """
                SELECT \(Self.milliseconds("e.closed_at", "d.recorded_at")) AS ms
                FROM pipeline_events e CROSS JOIN LATERAL unnest(e.detection_ids) AS i(id)
                JOIN pipeline_detections d ON d.id = i.id
                WHERE e.closed_at >= \(since)
                """
            let analyze = """
                SELECT \(Self.milliseconds("e.analyzed_at", "e.closed_at")) AS ms
                FROM pipeline_events e WHERE e.analyzed_at >= \(since)
                """
            let total = """
                SELECT \(Self.milliseconds("e.analyzed_at", """
                    (SELECT min(d.detected_at) FROM unnest(e.detection_ids) AS i(id)
                     JOIN pipeline_detections d ON d.id = i.id)
                    """)) AS ms
                FROM pipeline_events e WHERE e.analyzed_at >= \(since)
                """
            return """
                SELECT json_build_object(
                    'watch_to_detect', \(Self.stats(watch)), 'detect_to_batch', \(Self.stats(batch)),
                    'batch_to_analyze', \(Self.stats(analyze)), 'total_pipeline', \(Self.stats(total)))::text
                """
        } ?? "{}"
    }

    /// Cameras (not removed), security events and detections (of cameras not removed).
    public func counts() async throws -> (cameras: Int64, events: Int64, detections: Int64) {
        let rows = try await database.rows(
            """
            SELECT (SELECT count(*) FROM cameras WHERE removed_at IS NULL),
                   (SELECT coalesce(sum(n), 0)::int8 FROM security_event_scores),
                   (SELECT coalesce(sum(n), 0)::int8 FROM detection_totals)
            """)
        for try await (cameras, events, detections) in rows.decode((Int64, Int64, Int64).self) {
            return (cameras, events, detections)
        }
        return (0, 0, 0)
    }

    /// What `/api/system/storage` shows: the counts the seed names, and sizes in PostgreSQL
    /// (`postgres`, JSON object text: the database, the log (`events` with its indexes), the
    /// read models' current tables, the operational logs, and the counts again).
    public struct Storage: Sendable {
        public var postgres: String
        public var eventsCount: Int64
        public var detectionsCount: Int64
        public var logsCount: Int64
    }

    public func storage() async throws -> Storage {
        let rows = try await database.rows(
            """
            SELECT json_build_object(
                'database_bytes', pg_database_size(current_database()),
                'log_bytes', pg_total_relation_size('public.events'),
                'log_events_estimate', (SELECT greatest(reltuples, 0)::int8 FROM pg_class
                                        WHERE oid = 'public.events'::regclass),
                'read_models_bytes', (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE n.nspname LIKE 'projection\\_%' AND c.relkind IN ('r', 'm')),
                'logs_bytes', pg_total_relation_size('public.operational_logs'),
                'events_count', s.events, 'detections_count', s.detections, 'logs_count', s.logs
            )::text, s.events, s.detections, s.logs
            FROM (SELECT (SELECT coalesce(sum(n), 0)::int8 FROM security_event_scores) AS events,
                         (SELECT coalesce(sum(n), 0)::int8 FROM detection_totals) AS detections,
                         (SELECT count(*) FROM public.operational_logs) AS logs) AS s
            """)
        for try await (postgres, events, detections, logs) in rows.decode((String, Int64, Int64, Int64).self) {
            return Storage(postgres: postgres, eventsCount: events, detectionsCount: detections, logsCount: logs)
        }
        return Storage(postgres: "{}", eventsCount: 0, detectionsCount: 0, logsCount: 0)
    }
}
