import API
import ArgumentParser
import AsyncHTTPClient
import Domain
import EventStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Projections
import Simulator
import Synchronization
import Synthetic

/// `vigil bench ingest`: detections/s through the HTTP bulk path and through concurrent single
/// POSTs, each against COPY into the same table in the same run; the same POSTs to a write
/// node (projections off, ``writeNode(settings:probe:http:concurrency:seconds:meter:in:logger:)``);
/// and how long a detection takes from its POST to being listed by `GET /api/detections/{id}`.
struct IngestBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract:
            "Detection ingest over HTTP (NDJSON bulk, concurrent single POSTs) against COPY; POST-to-visible latency."
    )

    @Option(help: "Detections through COPY and through the NDJSON bulk path.")
    var bulk: Int = 100_000

    @Option(help: "Lines per NDJSON request.")
    var lines: Int = 5000

    @Option(help: "Seconds of single POSTs (wrk), of pgbench and of the echo route, each.")
    var seconds: Int = 10

    @Option(help: "Connections of wrk and clients of pgbench.")
    var concurrency: Int = 64

    @Option(help: "Detections timed from POST to visible (one at a time).")
    var visible: Int = 300

    @Option(help: "Detections/s posted meanwhile by other cameras while POST-to-visible is timed (0: none).")
    var steadyRate: Int = 200

    @Flag(help: "A short run (under 2 minutes): --bulk 20000 --seconds 5 --visible 100.")
    var quick = false

    func run() async throws {
        let logger = Bench.quietLogger()
        var settings = try PostgresSettings.fromEnvironment()
        settings.maximumConnections = 40
        let (bulk, lines, seconds, concurrency, visible) = (
            quick ? min(bulk, 20_000) : bulk, lines, quick ? min(self.seconds, 5) : self.seconds, self.concurrency,
            quick ? min(self.visible, 100) : self.visible
        )
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cluster = settings

        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench", logger: logger) { client, scratch in
            let store = EventStore(client: client, logger: logger)
            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, postgres: scratch)
            configuration.redis = nil  // batches close; no analysis jobs (measures ingest alone)
            let app = try buildApplication(configuration, logger: logger)
            let http = HTTPClient(
                eventLoopGroupProvider: .singleton,
                configuration: .init(
                    connectionPool: .init(
                        idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)))
            do {
                try await LiveServer.run(app, http: http, logger: logger) { server in
                    let api = SimulatorAPI(http: http, base: server.base, key: nil)
                    let cameras = try await (0..<4).asyncMap { try await api.registerCamera(CameraScene.names[$0]) }
                    print(
                        "vigil bench ingest: \(ProcessInfo.processInfo.activeProcessorCount) cores, server in this "
                            + "process with its projections running, fsync on; bulk client in this process, "
                            + "wrk and pgbench as processes of their own")
                    print("")

                    // Each phase starts with the projections caught up, so it doesn't pay for the last.
                    // Baseline: COPY of the same events into the same table.
                    let copy = try await Self.copyBaseline(store, cameras: cameras, count: bulk, chunk: lines)
                    try await Self.catchUp(store)
                    // NDJSON over HTTP, one request after the other.
                    let ndjson = try await Self.bulkOverHTTP(api, cameras: cameras, count: bulk, chunk: lines)
                    try await Self.catchUp(store)
                    printTable([copy, ndjson], baseline: copy)

                    // Single POSTs (wrk), against the database alone doing the same inserts
                    // (pgbench) and the bare framework (an echo route), all in this run.
                    print("")
                    try await LoadGenerators.pgbenchTable(store)
                    let meter = await CPUMeter.forCluster(of: store)
                    let beforeDatabase = meter.sample()
                    // The probe beside both database-bound phases: each pays for it alike, and a
                    // slow flush shows beside either.
                    async let flushesBesideDatabase = LoadGenerators.flushProbe(
                        "pgbench probe beside pgbench", settings: scratch, seconds: seconds, in: folder)
                    let database = try await LoadGenerators.pgbench(
                        "pgbench: one INSERT per transaction (bench_events)", settings: scratch,
                        clients: concurrency, seconds: seconds, in: folder)
                    let databaseProbe = try await flushesBesideDatabase
                    let databaseCost = meter.cost(since: beforeDatabase, requests: database.requests)
                    let beforeEcho = meter.sample()
                    let echo = try await LoadGenerators.withEchoServer(logger: logger) { url in
                        try await LoadGenerators.wrk(
                            "wrk → bare Hummingbird JSON echo route", url: url, cameras: cameras,
                            connections: concurrency, seconds: seconds, in: folder)
                    }
                    let echoCost = meter.cost(since: beforeEcho, requests: echo.requests)
                    let phaseStart = Date()
                    let beforePosts = meter.sample()
                    async let flushes = LoadGenerators.flushProbe(
                        "pgbench probe beside the POSTs", settings: scratch, seconds: seconds, in: folder)
                    let posts = try await LoadGenerators.wrk(
                        "wrk → POST /api/detections", url: server.base + "/api/detections", cameras: cameras,
                        connections: concurrency, seconds: seconds, in: folder)
                    let probe = try await flushes
                    let (stored, transactions) = try await Self.detectionTransactions(store, since: phaseStart)
                    try await Self.catchUp(store)
                    let postsCost = meter.cost(since: beforePosts, requests: posts.requests)
                    let writeNode = try await Self.writeNode(
                        settings: cluster, probe: scratch, http: http, concurrency: concurrency, seconds: seconds,
                        meter: meter, in: folder, logger: logger)
                    Self.printRuns([database, echo, posts, writeNode.posts], connections: concurrency)
                    print("one-row commits, about 20 a second (the WAL's flush):")
                    Self.printRuns([databaseProbe, probe, writeNode.probe], connections: nil)
                    print(
                        String(
                            format: "POST /api/detections: %.2f× pgbench, %.2f× the echo route; %d detections stored "
                                + "by %d transactions (%.1f per group commit), %d requests failed",
                            posts.perSecond / database.perSecond, posts.perSecond / echo.perSecond, stored,
                            transactions, Double(stored) / Double(max(1, transactions)), posts.errors))
                    print(
                        String(
                            format: "write node (projections off, its read models elsewhere): %.2f× pgbench, "
                                + "%.2f× the echo route, %d requests failed",
                            writeNode.posts.perSecond / database.perSecond, writeNode.posts.perSecond / echo.perSecond,
                            writeNode.posts.errors))
                    print(
                        "CPU per request (/proc; the server is this process, PostgreSQL every process of its cluster):")
                    print(
                        "  pgbench: PostgreSQL \(databaseCost.postgres.map { "\(CPUMeter.Cost.micros($0)) µs" } ?? "n/a")"
                    )
                    print("  echo route: \(echoCost.text)")
                    print("  POST /api/detections, until the read models had caught up: \(postsCost.text)")
                    print("  POST /api/detections, write node: \(writeNode.cost.text)")

                    // POST → visible in GET /api/detections/{id}.
                    print("")
                    let rate = steadyRate
                    let (latencies, background) = try await Self.visibility(
                        api, camera: cameras[0], others: Array(cameras.dropFirst()), count: visible, rate: rate)
                    let (listed, answered) = (latencies.map(\.visible), latencies.map(\.answered))
                    func spread(_ durations: [Duration]) -> String {
                        String(
                            format: "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
                            durations.percentileMilliseconds(0.5), durations.percentileMilliseconds(0.9),
                            durations.percentileMilliseconds(0.99), durations.percentileMilliseconds(1))
                    }
                    print(
                        "POST /api/detections → listed by GET /api/detections/{id}: \(listed.count) detections, "
                            + "\(spread(listed)); meanwhile \(rate)/s from other cameras "
                            + "(\(background.posted) posted, \(background.failed) failed)")
                    print("  of which the POST's own answer: \(spread(answered))")
                }
                try await http.shutdown()
            } catch {
                try? await http.shutdown()
                throw error
            }
        }
    }

    /// Waits until every projection has applied the whole log.
    static func catchUp(_ store: EventStore) async throws {
        let start = ContinuousClock.now
        while try await store.projectionStatuses().contains(where: { $0.lagEvents > 0 }) {
            let seconds = start.duration(to: .now).seconds
            FileHandle.standardError.write(Data("\rprojections catching up (\(Int(seconds)) s)".utf8))
            try await Task.sleep(for: .milliseconds(200))
        }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    static func detections(_ count: Int, cameras: [String]) -> [SimulatedDetection] {
        var random = SplitMix64(seed: 7)
        let start = Date().addingTimeInterval(-7 * 86_400)
        return (0..<count).map { index in
            SimulatedDetection(
                cameraId: cameras[index % cameras.count], detectedAt: start.addingTimeInterval(Double(index) * 3),
                objectType: CameraScene.pick(&random), confidence: 0.55 + random.unit() * 0.3,
                bbox: (10, 20, 100, 200))
        }
    }

    static func copyBaseline(
        _ store: EventStore, cameras: [String], count: Int, chunk: Int
    ) async throws
        -> Measurement
    {
        let metadata = EventMetadata(actor: SystemActor.bench)
        let inputs = detections(count, cameras: cameras)
        var latencies: [Duration] = []
        let start = ContinuousClock.now
        var nextID: Int64 = 10_000_000_000
        for chunkStart in stride(from: 0, to: count, by: chunk) {
            let began = ContinuousClock.now
            var items: [(stream: String, event: NewEvent)] = []
            for input in inputs[chunkStart..<min(chunkStart + chunk, count)] {
                nextID += 1
                let detection = DetectionRecorded(
                    id: nextID, cameraId: input.cameraId, filePath: "/x.jpg", detectedAt: input.detectedAt,
                    objectType: input.objectType, confidence: input.confidence, bboxX: 10, bboxY: 20, bboxWidth: 100,
                    bboxHeight: 200)
                items.append((detection.stream, try NewEvent(detection, metadata: metadata)))
            }
            _ = try await store.appendBulk(items)
            latencies.append(began.duration(to: .now))
        }
        return Measurement(
            name: "COPY DetectionRecorded (store, \(chunk)/COPY)", events: count, calls: latencies.count,
            elapsed: start.duration(to: .now), latencies: latencies)
    }

    static func bulkOverHTTP(
        _ api: SimulatorAPI, cameras: [String], count: Int, chunk: Int
    ) async throws
        -> Measurement
    {
        let all = detections(count, cameras: cameras).map { $0.json() }
        var latencies: [Duration] = []
        let start = ContinuousClock.now
        for chunkStart in stride(from: 0, to: count, by: chunk) {
            let began = ContinuousClock.now
            let report = try await api.sendLines(
                Array(all[chunkStart..<min(chunkStart + chunk, count)]), idempotencyKey: "bench-\(chunkStart)")
            guard report.rejected == 0 else { throw ValidationError("bulk lines rejected") }
            latencies.append(began.duration(to: .now))
        }
        return Measurement(
            name: "POST /api/detections/batch NDJSON (\(chunk) lines)", events: count, calls: latencies.count,
            elapsed: start.duration(to: .now), latencies: latencies)
    }

    /// Detections recorded since `start`, and how many transactions wrote them.
    static func detectionTransactions(_ store: EventStore, since start: Date) async throws -> (Int, Int) {
        let rows = try await store.client.query(
            """
            SELECT count(*)::int8, count(DISTINCT tx_id)::int8 FROM events
            WHERE type = 'DetectionRecorded' AND recorded_at >= \(start)
            """,
            logger: store.logger)
        for try await (events, transactions) in rows.decode((Int64, Int64).self) {
            return (Int(events), Int(transactions))
        }
        return (0, 0)
    }

    /// `connections`: the table's header; nil, none (rows under the table above).
    static func printRuns(_ runs: [LoadGenerators.Run], connections: Int?) {
        if let connections {
            print(
                pad("\(connections) connections, fixed time", 54, left: true) + pad("requests", 10) + pad("per s", 9)
                    + pad("p50 ms", 9) + pad("p99 ms", 9) + pad("max ms", 9) + pad("errors", 8))
        }
        for run in runs {
            print(
                pad(run.name, 54, left: true) + pad("\(run.requests)", 10)
                    + pad(String(format: "%.0f", run.perSecond), 9) + pad(String(format: "%.2f", run.p50), 9)
                    + pad(String(format: "%.2f", run.p99), 9) + pad(String(format: "%.1f", run.max), 9)
                    + pad("\(run.errors)", 8))
        }
    }

    /// Times `count` detections of `camera` from POST to `GET /api/detections/{id}` answering,
    /// one at a time, while `rate` detections/s of the `others` are posted on schedule.
    static func visibility(
        _ api: SimulatorAPI, camera: String, others: [String], count: Int, rate: Int
    ) async throws
        -> ([(visible: Duration, answered: Duration)], (posted: Int, failed: Int))
    {
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            let done = StopFlag()
            if rate > 0, !others.isEmpty {
                group.addTask {
                    // Each post on its own schedule, not after the one before.
                    try await withThrowingTaskGroup(of: Bool.self) { posts in
                        let start = ContinuousClock.now
                        var sent = 0
                        while !done.isSet {
                            let due = start + .seconds(Double(sent) / Double(rate))
                            if due > .now { try await Task.sleep(until: due) }
                            let detection = SimulatedDetection(
                                cameraId: others[sent % others.count], detectedAt: Date(), objectType: "person",
                                confidence: 0.6, bbox: (1, 1, 10, 10))
                            posts.addTask { (try? await api.sendOne(detection.json())) ?? false }
                            sent += 1
                        }
                        var failed = 0
                        for try await ok in posts where !ok { failed += 1 }
                        return (sent, failed)
                    }
                }
            }
            let latencies = try await timedVisibility(api, camera: camera, count: count)
            done.set()
            var background = (posted: 0, failed: 0)
            for try await (posted, failed) in group { background = (posted, failed) }
            return (latencies, background)
        }
    }

    private static func timedVisibility(
        _ api: SimulatorAPI, camera: String, count: Int
    ) async throws -> [(visible: Duration, answered: Duration)] {
        var latencies: [(visible: Duration, answered: Duration)] = []
        for index in 0..<count {
            let detection = SimulatedDetection(
                cameraId: camera, detectedAt: Date(), objectType: "car", confidence: 0.7, bbox: (1, 1, 10, 10))
            let began = ContinuousClock.now
            let (status, created) = try await api.execute(
                api.request(.POST, "/api/detections", contentType: "application/json", body: detection.json()))
            guard status == .created, let id = created["id"] as? Int else { throw ValidationError("POST failed") }
            let answered = began.duration(to: .now)
            while true {
                let (status, _) = try await api.execute(
                    api.request(.GET, "/api/detections/\(id)", contentType: "application/json", body: ""))
                if status == .ok { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            latencies.append((began.duration(to: .now), answered))
            if index % 10 == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        return latencies
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

/// Tells a background loop to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
