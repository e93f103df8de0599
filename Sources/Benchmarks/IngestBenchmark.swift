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
import Synthetic

/// `vigil bench ingest`: detections/s through the HTTP bulk path and through concurrent single
/// POSTs, each against COPY into the same table in the same run; and how long a detection
/// takes from its POST to being listed by `GET /api/detections/{id}`.
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

    @Option(help: "Detections through single POSTs.")
    var single: Int = 20_000

    @Option(help: "Concurrent single-POST clients.")
    var concurrency: Int = 64

    @Option(help: "Detections timed from POST to visible (one at a time).")
    var visible: Int = 300

    func run() async throws {
        let logger = Bench.quietLogger()
        var settings = try PostgresSettings.fromEnvironment()
        settings.maximumConnections = 40
        let (bulk, lines, single, concurrency, visible) = (
            self.bulk, self.lines, self.single, self.concurrency, self.visible
        )

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
                        "vigil bench ingest: \(ProcessInfo.processInfo.activeProcessorCount) cores, server and client "
                            + "in one process over loopback HTTP, projections running, fsync on")
                    print("")

                    // Each phase starts with the projections caught up, so it doesn't pay for the last.
                    // Baseline: COPY of the same events into the same table.
                    let copy = try await Self.copyBaseline(store, cameras: cameras, count: bulk, chunk: lines)
                    try await Self.catchUp(store)
                    // NDJSON over HTTP, one request after the other.
                    let ndjson = try await Self.bulkOverHTTP(api, cameras: cameras, count: bulk, chunk: lines)
                    try await Self.catchUp(store)
                    // Concurrent single POSTs.
                    let singles = try await Self.singlePosts(
                        api, cameras: cameras, count: single, concurrency: concurrency)
                    try await Self.catchUp(store)
                    printTable([copy, ndjson, singles], baseline: copy)

                    // POST → visible in GET /api/detections/{id}.
                    print("")
                    let latencies = try await Self.visibility(api, camera: cameras[0], count: visible)
                    let sorted = latencies.sorted()
                    func percentile(_ p: Double) -> Double {
                        sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
                            .seconds * 1000
                    }
                    print(
                        String(
                            format: "POST /api/detections → listed by GET /api/detections/{id}: %d detections, "
                                + "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
                            sorted.count, percentile(0.5), percentile(0.9), percentile(0.99), percentile(1)))
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
        let metadata = EventMetadata(actor: "bench")
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

    static func singlePosts(
        _ api: SimulatorAPI, cameras: [String], count: Int, concurrency: Int
    ) async throws
        -> Measurement
    {
        let all = detections(count, cameras: cameras).map { $0.json() }
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for client in 0..<concurrency {
                group.addTask {
                    var mine: [Duration] = []
                    // Client c sends detections c, c + concurrency, c + 2 × concurrency, …
                    for index in stride(from: client, to: count, by: concurrency) {
                        let began = ContinuousClock.now
                        guard try await api.sendOne(all[index]) else { throw ValidationError("POST failed") }
                        mine.append(began.duration(to: .now))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return Measurement(
            name: "POST /api/detections × \(concurrency) concurrent clients", events: count, calls: count,
            elapsed: start.duration(to: .now), latencies: latencies)
    }

    static func visibility(
        _ api: SimulatorAPI, camera: String, count: Int
    ) async throws
        -> [Duration]
    {
        var latencies: [Duration] = []
        for index in 0..<count {
            let detection = SimulatedDetection(
                cameraId: camera, detectedAt: Date(), objectType: "car", confidence: 0.7, bbox: (1, 1, 10, 10))
            let began = ContinuousClock.now
            let (status, created) = try await api.execute(
                api.request(.POST, "/api/detections", contentType: "application/json", body: detection.json()))
            guard status == .created, let id = created["id"] as? Int else { throw ValidationError("POST failed") }
            while true {
                let (status, _) = try await api.execute(
                    api.request(.GET, "/api/detections/\(id)", contentType: "application/json", body: ""))
                if status == .ok { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            latencies.append(began.duration(to: .now))
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
