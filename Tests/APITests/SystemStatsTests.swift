import Domain
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import VigilTesting

@testable import API

/// `/api/system/stats`, `/storage`, `/telemetry`, `/pipeline-latency` after detections went the
/// whole way: recorded, batched, closed, analyzed by the built-in analyzer.
@Suite struct SystemStatsTests {
    @Test("Counts, sizes, queue depths and each stage's latency, from the log's own times")
    func figures() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: PipelineTests.configure(prefix: prefix)) { _, client in
            try await IngestAPITests.register(client, "porch")
            // Seen by the camera 5 s before they are sent: the watch stage is at least that.
            let seen = EventCoding.timestamp(Date().addingTimeInterval(-5), .microseconds)
            let batch = (0..<3).map { _ in IngestAPITests.detection(object: "car", at: seen) }
            let posted = try await client.send(
                .post, "/api/detections/batch", json: "[\(batch.joined(separator: ","))]")
            #expect(posted.status == .created)
            try await waitUntil("the batch was closed and analyzed") {
                let events = try await PipelineTests.events(client)
                return events.count == 1 && events[0]["risk_score"] is Int
            }
            var latency: [String: Any] = [:]
            try await waitUntil("the pipeline read model has the analysis") {
                latency = try await client.getJSON("/api/system/pipeline-latency")
                return (latency["total_pipeline"] as? [String: Any])?["sample_count"] as? Int == 1
            }
            func stage(_ name: String) -> [String: Any] { latency[name] as? [String: Any] ?? [:] }
            #expect(stage("watch_to_detect")["sample_count"] as? Int == 3)
            #expect((stage("watch_to_detect")["min_ms"] as? Double ?? 0) >= 5000)
            #expect(stage("detect_to_batch")["sample_count"] as? Int == 3)
            // The batch closes on its 2 s idle timeout.
            #expect((stage("detect_to_batch")["min_ms"] as? Double ?? 0) >= 1900)
            #expect(stage("batch_to_analyze")["sample_count"] as? Int == 1)
            #expect((stage("batch_to_analyze")["p50_ms"] as? Double ?? -1) >= 0)
            let total = stage("total_pipeline")
            #expect((total["min_ms"] as? Double ?? 0) >= 6900)
            for name in ["watch_to_detect", "detect_to_batch", "batch_to_analyze", "total_pipeline"] {
                let s = stage(name)
                let ordered = [s["min_ms"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]].compactMap {
                    $0 as? Double
                }
                #expect(ordered.count == 5 && ordered == ordered.sorted(), "\(name): \(s)")
            }
            #expect(latency["window_minutes"] as? Int == 60)
            #expect(
                try await client.send(.get, "/api/system/pipeline-latency?window_minutes=0").status
                    == .unprocessableContent)
            // A window that ends before anything happened has no samples.
            let later = try await client.getJSON("/api/system/pipeline-latency?window_minutes=1")
            #expect(later["watch_to_detect"] is [String: Any])

            let telemetry = try await client.getJSON("/api/system/telemetry")
            let queues = try #require(telemetry["queues"] as? [String: Any])
            #expect(queues["analysis_queue"] as? Int == 0 && queues["detection_queue"] as? Int == 0)
            let latencies = try #require(telemetry["latencies"] as? [String: Any])
            #expect((latencies["watch"] as? [String: Any])?["sample_count"] as? Int == 3)
            #expect((latencies["analyze"] as? [String: Any])?["sample_count"] as? Int == 1)
            #expect(latencies["detect"] is NSNull)

            let stats = try await client.getJSON("/api/system/stats")
            #expect(stats["total_cameras"] as? Int == 1)
            #expect(stats["total_events"] as? Int == 1)
            #expect(stats["total_detections"] as? Int == 3)
            #expect((stats["uptime_seconds"] as? Double ?? -1) >= 0)

            let storage = try await client.getJSON("/api/system/storage")
            let postgres = try #require(storage["postgres"] as? [String: Any])
            #expect((postgres["database_bytes"] as? Int ?? 0) > 0 && (postgres["log_bytes"] as? Int ?? 0) > 0)
            #expect((postgres["read_models_bytes"] as? Int ?? 0) > 0)
            #expect(postgres["detections_count"] as? Int == 3 && postgres["events_count"] as? Int == 1)
            // The seed's counts where 004_* has them, at the top.
            #expect(storage["detections_count"] as? Int == 3 && storage["events_count"] as? Int == 1)
            #expect(storage["logs_count"] as? Int == postgres["logs_count"] as? Int && storage["logs_count"] != nil)
            #expect(storage["gpu_stats_count"] as? Int == 0 && storage["thumbnails"] is NSNull)
            #expect(storage["disk_used_bytes"] is NSNull)
        }
    }
}
