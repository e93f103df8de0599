import Domain
import Foundation
import Hummingbird
import Pipeline
import Projections
import Redis

/// The seed's system figures: `/api/system/stats` (counts, uptime), `/storage` (sizes in
/// PostgreSQL), `/telemetry` (queue depths, the last hour's stage latencies) and
/// `/pipeline-latency` (stage latencies with percentiles over `window_minutes`), from the read
/// models (``PipelineReadModel``) and Redis.
struct SystemStatsController<Context: RequestContext> {
    let pipeline: PipelineReadModel
    let redis: RedisClient?
    let queue: AnalysisQueue
    /// When this server started (uptime).
    let started: Date

    func addRoutes(to router: Router<Context>) {
        let system = router.group("/api/system")
        system.get("stats", use: stats)
        system.get("storage", use: storage)
        system.get("telemetry", use: telemetry)
        system.get("pipeline-latency", use: latency)
    }

    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        let counts = try await pipeline.counts()
        var body = JSONWriter()
        body.object { object in
            object.field("total_cameras", counts.cameras)
            object.field("total_events", counts.events)
            object.field("total_detections", counts.detections)
            object.field("uptime_seconds", Date().timeIntervalSince(started).rounded(.down))
        }
        return body.response()
    }

    /// The seed's fields, and PostgreSQL's sizes (`postgres`). The seed's disk and media fields
    /// are null (Vigil keeps no files: its data is all in PostgreSQL, whose disk it can't see),
    /// `gpu_stats_count` 0 (it keeps no GPU samples).
    @Sendable func storage(_ request: Request, context: Context) async throws -> Response {
        let storage = try await pipeline.storage()
        var body = JSONWriter()
        body.object { object in
            for field in ["disk_used_bytes", "disk_total_bytes", "disk_free_bytes", "disk_usage_percent"] {
                object.field(field, nil as String?)
            }
            for field in ["thumbnails", "images", "clips"] { object.field(field, nil as String?) }
            object.field("events_count", storage.eventsCount)
            object.field("detections_count", storage.detectionsCount)
            object.field("gpu_stats_count", 0)
            object.field("logs_count", storage.logsCount)
            object.raw("postgres", json: storage.postgres)
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return body.response()
    }

    /// `{queues: {detection_queue, analysis_queue}, latencies: {watch, detect, batch, analyze},
    /// timestamp}` over the last hour. `detect` is null: detection happens in the cameras'
    /// workers, before Vigil sees it. A queue is null when Redis is not there.
    @Sendable func telemetry(_ request: Request, context: Context) async throws -> Response {
        let stages = try await stages(since: Date().addingTimeInterval(-3600))
        async let analysis = depth(queue.jobs)
        async let detection = depth(queue.prefix + "detection_queue")
        let (analysisDepth, detectionDepth) = await (analysis, detection)
        var body = JSONWriter()
        body.object { object in
            object.object("queues") { queues in
                queues.field("detection_queue", detectionDepth.map(Int64.init))
                queues.field("analysis_queue", analysisDepth.map(Int64.init))
            }
            object.object("latencies") { latencies in
                latencies.raw("watch", json: Self.json(stages["watch_to_detect"]))
                latencies.field("detect", nil as String?)
                latencies.raw("batch", json: Self.json(stages["detect_to_batch"]))
                latencies.raw("analyze", json: Self.json(stages["batch_to_analyze"]))
            }
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return body.response()
    }

    /// Each stage's `{avg_ms, min_ms, max_ms, p50_ms, p95_ms, p99_ms, sample_count}` (null when
    /// nothing passed it) over the last `window_minutes` (60; 1..10080).
    @Sendable func latency(_ request: Request, context: Context) async throws -> Response {
        let minutes = try QueryParameters(request).integer("window_minutes", default: 60, in: 1...10_080)
        let stages = try await stages(since: Date().addingTimeInterval(-Double(minutes) * 60))
        var body = JSONWriter()
        body.object { object in
            for stage in ["watch_to_detect", "detect_to_batch", "batch_to_analyze", "total_pipeline"] {
                object.raw(stage, json: Self.json(stages[stage]))
            }
            object.field("window_minutes", minutes)
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return body.response()
    }

    private func stages(since: Date) async throws -> [String: JSONValue] {
        let text = try await pipeline.latencies(since: since)
        guard case .object(let stages) = try StrictJSON.parse(text.utf8) else { return [:] }
        return stages
    }

    static func json(_ value: JSONValue?) -> String {
        guard let value, let data = try? JSONEncoder().encode(value) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    /// A Redis list's length; nil without Redis or when it doesn't answer.
    private func depth(_ key: String) async -> Int? {
        guard let redis else { return nil }
        return try? await redis.llen(key)
    }
}
