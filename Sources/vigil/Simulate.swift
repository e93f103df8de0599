import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import Simulator

/// `vigil simulate`: cameras and a detector, driving the real HTTP API as they would.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive the API as cameras and a detector would: a backfill of history, then live detections.",
        discussion: """
            Registers --cameras cameras (an existing one is reused), then sends --backfill days of \
            history through the bulk NDJSON path (detection times in the past, day/night rhythm, \
            bursts of 1–6 detections per visit), then --rate detections per second as single POSTs \
            for --duration seconds. The same --seed gives the same history.
            """
    )

    @Option(help: "The Vigil API.")
    var url = "http://127.0.0.1:8000"

    @Option(help: "How many cameras.")
    var cameras = 4

    @Option(help: "Days of history to send first, through the bulk path (0: none).")
    var backfill = 0

    @Option(help: "Live detections per second after the backfill (0: none).")
    var rate = 0.0

    @Option(help: "How long to send live detections, in seconds.")
    var duration = 60.0

    @Option(help: "Seed of the random history.")
    var seed: UInt64 = 42

    @Option(help: "API key for X-API-Key; cameras need role admin (default: VIGIL_ADMIN_KEY, else VIGIL_WORKER_KEY).")
    var key: String? = Environment.string("VIGIL_ADMIN_KEY") ?? Environment.string("VIGIL_WORKER_KEY")

    func validate() throws {
        guard (1...CameraScene.names.count).contains(cameras) else {
            throw ValidationError("--cameras must be 1…\(CameraScene.names.count)")
        }
        guard backfill >= 0, backfill <= 366 else { throw ValidationError("--backfill must be 0…366 days") }
        guard rate >= 0, rate <= 10_000 else { throw ValidationError("--rate must be 0…10000") }
        guard duration >= 0, duration <= 86_400 else { throw ValidationError("--duration must be 0…86400 s") }
    }

    func run() async throws {
        // Idle connections are dropped well before the server's idle timeout (30 s by default)
        // closes them: a slow simulator never sends on a connection the server is closing.
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(10))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let api = SimulatorAPI(http: http, base: url, key: key)
            var random = SplitMix64(seed: seed)
            let scenes = Array(CameraScene.names.prefix(cameras))
            var ids: [String] = []
            for name in scenes { ids.append(try await api.registerCamera(name)) }
            print("simulate: cameras \(ids.joined(separator: ", "))")
            if backfill > 0 { try await sendBackfill(api, cameras: ids, random: &random) }
            if rate > 0 && duration > 0 { try await sendLive(api, cameras: ids, random: &random) }
            try await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func sendBackfill(_ api: SimulatorAPI, cameras: [String], random: inout SplitMix64) async throws {
        let end = Date()
        let start = end.addingTimeInterval(-Double(backfill) * 86_400)
        var detections: [SimulatedDetection] = []
        for camera in cameras {
            detections += CameraScene.history(camera: camera, from: start, to: end, random: &random)
        }
        detections.sort { $0.detectedAt < $1.detectedAt }
        let started = ContinuousClock.now
        var sent = 0
        var rejected = 0
        for chunkStart in stride(from: 0, to: detections.count, by: 5000) {
            let chunk = detections[chunkStart..<min(chunkStart + 5000, detections.count)]
            let report = try await api.sendLines(
                // One key per chunk of this run (its retries reuse it); another run's backfill
                // is other input, and reusing its keys would be refused line by line (409).
                chunk.map { $0.json() },
                idempotencyKey: "backfill-\(seed)-\(Int(end.timeIntervalSince1970))-\(chunkStart)")
            sent += chunk.count
            rejected += report.rejected
            let seconds = started.duration(to: .now) / .seconds(1)
            let line = String(
                format: "\rsimulate: backfill %d/%d detections (%.0f/s)", sent, detections.count,
                Double(sent) / max(seconds, 0.001))
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        print(
            String(
                format: "\nsimulate: backfilled %d days: %d detections in %.1f s%@", backfill, detections.count,
                started.duration(to: .now) / .seconds(1), rejected > 0 ? ", \(rejected) rejected" : ""))
    }

    private func sendLive(_ api: SimulatorAPI, cameras: [String], random: inout SplitMix64) async throws {
        let started = ContinuousClock.now
        let deadline = started + .seconds(duration)
        let interval = Duration.seconds(1 / rate)
        var next = started
        var sent = 0
        var failed = 0
        print("simulate: live, \(rate) detections/s for \(Int(duration)) s")
        // A visit is a burst of detections of one camera; the rate is the average.
        while next < deadline {
            let camera = cameras[Int(random.next() % UInt64(cameras.count))]
            let visit = CameraScene.visit(camera: camera, at: Date(), random: &random)
            for var detection in visit where next < deadline {
                try await Task.sleep(until: next, clock: .continuous)
                detection.detectedAt = Date()
                if try await api.sendOne(detection.json()) { sent += 1 } else { failed += 1 }
                next = next + interval
            }
            if sent % 50 == 0 { print("simulate: \(sent) live detections sent") }
        }
        print("simulate: done, \(sent) live detections sent" + (failed > 0 ? ", \(failed) failed" : ""))
    }
}
