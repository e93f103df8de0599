import API
import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Projections
import Synthetic

/// `vigil bench severity`: with a large analyzed history in the log, how long a threshold
/// change takes to show in the event list and the charts, the latency of the what-if preview and
/// of risk-history against the same answers computed from the events table, and the speed of a
/// full analytics rebuild — in one run on one scratch database.
struct SeverityBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "severity",
        abstract: "Threshold change → new levels everywhere; preview and risk-history latency; analytics rebuild."
    )

    @Option(help: "Analyzed security events in the history (each with one detection: four log events), over a year.")
    var events: Int = 1_000_000

    @Option(help: "Requests measured per latency row.")
    var samples: Int = 50

    @Flag(help: "Keep the scratch database (its name is printed) instead of dropping it.")
    var keep = false

    typealias Pages = PagesBenchmark

    func run() async throws {
        let logger = Bench.quietLogger()
        let settings = try PostgresSettings.fromEnvironment()
        let (events, samples) = (self.events, self.samples)
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench_severity", logger: logger, keep: keep) {
            client, scratch in
            let store = EventStore(client: client, logger: logger)
            print(
                "vigil bench severity: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(events) analyzed "
                    + "security events over a year, database \(scratch.database)")

            // 1. The history into the log, then the read models built from it.
            let history = SyntheticHistory(
                cameraCount: 4, start: Date(timeIntervalSince1970: 1_767_225_600), spacing: 31_536_000 / Double(events))
            let appendStart = ContinuousClock.now
            try await store.appendSynthetic(history, events: 0..<events, chunk: 10_000) { done in
                if done % 100_000 == 0 || done == events {
                    Pages.progress("appending", done, events, since: appendStart)
                }
            }
            Pages.endProgress(
                String(
                    format: "appended %d log events in %.1f s", events * 4 + 4, appendStart.duration(to: .now).seconds))

            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, postgres: scratch)
            configuration.projectionOptions = .init(batchSize: ProjectionRunner.Options().batchSize)
            let app = try buildApplication(configuration, logger: logger)
            try await LiveServer.run(app, logger: logger) { http in
                let buildStart = ContinuousClock.now
                try await Pages.waitForReadModels(store, generation: 1, since: buildStart, label: "building")
                Pages.endProgress(
                    String(
                        format: "built the read models (analytics among them) in %.1f s",
                        buildStart.duration(to: .now).seconds))

                let range = "start_date=2026-01-01&end_date=2026-12-31"
                let historyURI = "/api/analytics/risk-history?\(range)"

                // 2. Latency: the preview and risk-history from the analytics read model, against
                // the same numbers computed from the security_events table.
                print("")
                print(
                    "latency, ms (p50 / p99)                             read model      from security_events   ratio p50"
                )
                let previewURI = "/api/system/severity/preview?low_max=20&medium_max=45&high_max=70"
                let preview = try await Pages.measure(http, previewURI, samples: samples, budget: .seconds(60))
                let previewSQL = try await Self.measureSQL(
                    // What the preview needs, from the table: events per camera and score.
                    """
                    SELECT camera_id, risk_score, count(*) FROM security_events
                    WHERE NOT hidden AND risk_score IS NOT NULL GROUP BY 1, 2
                    """, client: client, logger: logger, samples: max(3, samples / 10))
                Self.latencyRow("GET /api/system/severity/preview (all history)", preview, previewSQL)
                // No Redis here: every request computes its answer (and its ETag).
                let riskHistory = try await Pages.measure(http, historyURI, samples: samples, budget: .seconds(60))
                let riskHistorySQL = try await Self.measureSQL(
                    """
                    SELECT (started_at AT TIME ZONE 'UTC')::date,
                           count(*) FILTER (WHERE risk_score <= 29), count(*) FILTER (WHERE risk_score BETWEEN 30 AND 59),
                           count(*) FILTER (WHERE risk_score BETWEEN 60 AND 84), count(*) FILTER (WHERE risk_score > 84)
                    FROM security_events
                    WHERE NOT hidden AND risk_score IS NOT NULL
                      AND started_at >= '2026-01-01' AND started_at < '2027-01-01'
                    GROUP BY 1
                    """, client: client, logger: logger, samples: max(3, samples / 10))
                Self.latencyRow("GET /api/analytics/risk-history (365 days)", riskHistory, riskHistorySQL)

                // 3. Threshold changes: PUT, then the first reads after it.
                print("")
                print("threshold change → first reads after the PUT returned (ms)")
                let proposals = [
                    SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70),
                    SeverityThresholds(lowMax: 35, mediumMax: 65, highMax: 90),
                    SeverityThresholds(lowMax: 10, mediumMax: 30, highMax: 50),
                    SeverityThresholds.defaults,
                ]
                var allReflected = true
                for proposed in proposals {
                    let query =
                        "low_max=\(proposed.lowMax)&medium_max=\(proposed.mediumMax)&high_max=\(proposed.highMax)"
                    let predicted = try await Self.json(http, "/api/system/severity/preview?\(query)")
                    let levels = predicted["levels"] as? [String: [String: Int]] ?? [:]
                    let body =
                        #"{"low_max": \#(proposed.lowMax), "medium_max": \#(proposed.mediumMax), "high_max": \#(proposed.highMax)}"#
                    let putStart = ContinuousClock.now
                    let put = try await http.execute(
                        "/api/system/severity", method: .PUT, headers: ["Content-Type": "application/json"],
                        body: ByteBuffer(string: body))
                    let putTime = putStart.duration(to: .now)
                    guard put.status == .ok else {
                        throw Pages.ValidationError("PUT /api/system/severity: \(put.status)")
                    }

                    let listStart = ContinuousClock.now
                    let critical = try await Self.json(http, "/api/events?limit=1&risk_level=critical")["count"] as? Int
                    let listTime = listStart.duration(to: .now)
                    let chartStart = ContinuousClock.now
                    let chart = try await Self.json(http, historyURI)["data_points"] as? [[String: Any]] ?? []
                    let chartTime = chartStart.duration(to: .now)
                    let statsStart = ContinuousClock.now
                    let stats = try await Self.json(http, "/api/events/stats")["events_by_risk_level"] as? [String: Int]
                    let statsTime = statsStart.duration(to: .now)

                    var charted: [String: Int] = [:]
                    for point in chart {
                        for level in RiskLevel.allCases {
                            charted[level.rawValue, default: 0] += point[level.rawValue] as? Int ?? 0
                        }
                    }
                    let expected = levels.mapValues { $0["proposed"] ?? -1 }
                    let reflected = critical == expected["critical"] && charted == expected && stats == expected
                    allReflected = allReflected && reflected
                    print(
                        String(
                            format:
                                "  %2d/%2d/%2d: PUT %.1f, events?risk_level=critical %.1f, risk-history %.1f, stats %.1f — %@",
                            proposed.lowMax, proposed.mediumMax, proposed.highMax, putTime.seconds * 1000,
                            listTime.seconds * 1000, chartTime.seconds * 1000, statsTime.seconds * 1000,
                            reflected
                                ? "new levels on the first read, equal to the preview (\(expected["critical"] ?? 0) critical, \(levels.values.map { $0["proposed"] ?? 0 }.reduce(0, +)) events)"
                                : "NOT reflected: list \(critical ?? -1), chart \(charted), stats \(stats ?? [:]), preview \(expected)"
                        ))
                }

                // 4. Rebuild analytics from the log while risk-history keeps being served.
                let before = try await Self.bodies(http, range)
                let rebuildStart = ContinuousClock.now
                let generation = try await store.requestRebuild(of: ReadModels.named("analytics")!)
                var served = 0
                var failures = 0
                while true {
                    let statuses = try await store.projectionStatuses()
                    if let analytics = statuses.first(where: { $0.name == "analytics" }),
                        analytics.generation >= generation, analytics.rebuild == nil
                    {
                        break
                    }
                    let response = try await http.execute(historyURI)
                    if response.status != .ok { failures += 1 }
                    served += 1
                    if served % 10 == 0 { try await Pages.rebuildProgress(store, since: rebuildStart) }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let rebuilt = rebuildStart.duration(to: .now).seconds
                let applied = events * 3  // a detection, an open and an analysis per event
                let after = try await Self.bodies(http, range)
                Pages.endProgress("")
                print(
                    String(
                        format: "rebuilt analytics from the log in %.1f s: %.0f events/s (%d events applied); "
                            + "%d risk-history requests meanwhile, %d failed; answers after == before: %@",
                        rebuilt, Double(applied) / rebuilt, applied, served, failures, after == before ? "yes" : "NO"))
                guard allReflected, after == before, failures == 0 else {
                    throw Pages.ValidationError("the benchmark's checks failed")
                }
            }
        }
    }

    static func json(_ http: LiveServer, _ uri: String) async throws -> [String: Any] {
        let response = try await http.execute(uri)
        guard response.status == .ok,
            let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        else { throw Pages.ValidationError("\(uri): \(response.status)") }
        return body
    }

    /// Every analytics answer over `range` and the preview, as text.
    static func bodies(_ http: LiveServer, _ range: String) async throws -> [String] {
        var bodies: [String] = []
        for route in [
            "detection-trends", "risk-history", "camera-uptime", "object-distribution", "risk-score-distribution",
            "risk-score-trends",
        ] {
            let response = try await http.execute("/api/analytics/\(route)?\(range)")
            bodies.append(String(buffer: response.body))
        }
        let preview = try await http.execute(
            "/api/system/severity/preview?low_max=20&medium_max=45&high_max=70")
        bodies.append(String(buffer: preview.body))
        return bodies
    }

    static func measureSQL(
        _ sql: String, client: PostgresClient, logger: Logger, samples: Int
    ) async throws -> (p50: Double, p99: Double) {
        var latencies: [Duration] = []
        for round in 0...samples {
            let start = ContinuousClock.now
            for try await _ in try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger) {}
            if round > 0 { latencies.append(start.duration(to: .now)) }
        }
        return Pages.percentiles(latencies)
    }

    static func latencyRow(_ name: String, _ model: (p50: Double, p99: Double), _ table: (p50: Double, p99: Double)) {
        let padded = name + String(repeating: " ", count: max(0, 50 - name.count))
        print(
            padded
                + String(
                    format: "%7.1f / %-7.1f %9.1f / %-9.1f %8.4fx", model.p50, model.p99, table.p50, table.p99,
                    model.p50 / table.p50))
    }
}
