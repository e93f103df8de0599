import ArgumentParser
import AsyncHTTPClient
import Domain
import Foundation
import NIOCore
import NIOHTTP1

/// `vigil simulate`: cameras and a detector, driving the real HTTP API as they would.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive the API as cameras and a detector would: a backfill of history, then live detections.",
        discussion: """
            Registers --cameras cameras (an existing one is reused), then sends --backfill days of \\
            history through the bulk NDJSON path (detection times in the past, day/night rhythm, \\
            bursts of 1–6 detections per visit), then --rate detections per second as single POSTs \\
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

    @Option(help: "Worker key for X-API-Key (VIGIL_WORKER_KEY).")
    var key: String? = Environment.string("VIGIL_WORKER_KEY")

    func validate() throws {
        guard (1...CameraScene.names.count).contains(cameras) else {
            throw ValidationError("--cameras must be 1…\(CameraScene.names.count)")
        }
        guard backfill >= 0, backfill <= 366 else { throw ValidationError("--backfill must be 0…366 days") }
        guard rate >= 0, rate <= 10_000 else { throw ValidationError("--rate must be 0…10000") }
        guard duration >= 0, duration <= 86_400 else { throw ValidationError("--duration must be 0…86400 s") }
    }

    func run() async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
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
                chunk.map { $0.json() }, idempotencyKey: "backfill-\(seed)-\(chunkStart)")
            sent += chunk.count
            rejected += report.rejected
            let seconds = started.duration(to: .now).seconds
            let line = String(
                format: "\rsimulate: backfill %d/%d detections (%.0f/s)", sent, detections.count,
                Double(sent) / max(seconds, 0.001))
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        print(
            String(
                format: "\nsimulate: backfilled %d days: %d detections in %.1f s%@", backfill, detections.count,
                started.duration(to: .now).seconds, rejected > 0 ? ", \(rejected) rejected" : ""))
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

/// The API as the simulator uses it.
struct SimulatorAPI {
    let http: HTTPClient
    let base: String
    let key: String?

    struct Report { var accepted: Int, rejected: Int }

    func request(
        _ method: HTTPMethod, _ path: String, contentType: String, body: String, headers: [(String, String)] = []
    )
        -> HTTPClientRequest
    {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "User-Agent", value: "vigil-simulate")
        if let key { request.headers.add(name: "X-API-Key", value: key) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return request
    }

    /// Sends `request`; while the server can't be reached or answers 5xx (a restart, a
    /// database outage), tries again with a doubling wait (0.5 s up to 10 s) for up to 10
    /// minutes. Every request the simulator retries carries an `Idempotency-Key`, so a retry
    /// never records a detection twice.
    func execute(_ request: HTTPClientRequest) async throws -> (HTTPResponseStatus, [String: Any]) {
        let clock = ContinuousClock()
        let giveUp = clock.now + .seconds(600)
        var delay = Duration.milliseconds(500)
        while true {
            let outcome: Result<(HTTPResponseStatus, [String: Any]), any Error>
            do {
                let response = try await http.execute(request, timeout: .seconds(120))
                let body = try await response.body.collect(upTo: 16 << 20)
                let object =
                    (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
                outcome = .success((response.status, object))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let (status, object)) where status.code < 500: return (status, object)
            case _ where clock.now + delay > giveUp: return try outcome.get()
            case .success(let (status, _)):
                print("simulate: \(request.url) answered \(status.code); trying again in \(delay)")
            case .failure(let error):
                print("simulate: \(request.url) failed (\(error)); trying again in \(delay)")
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(10))
        }
    }

    /// Registers a camera; an existing one (409) is reused. Returns its id.
    func registerCamera(_ name: String) async throws -> String {
        let folder = "/export/foscam/" + name.lowercased().replacingOccurrences(of: " ", with: "_")
        let body = #"{"name": "\#(name)", "folder_path": "\#(folder)"}"#
        let (status, object) = try await execute(
            request(.POST, "/api/cameras", contentType: "application/json", body: body))
        if status == .created, let id = object["id"] as? String { return id }
        if status == .conflict { return Camera.normalizedID(name) }
        throw SimulatorError("POST /api/cameras \(name): \(status.code) \(object)")
    }

    func sendLines(_ lines: [String], idempotencyKey: String) async throws -> Report {
        let (status, object) = try await execute(
            request(
                .POST, "/api/detections/batch", contentType: "application/x-ndjson",
                body: lines.joined(separator: "\n"), headers: [("Idempotency-Key", idempotencyKey)]))
        guard status == .ok else { throw SimulatorError("POST /api/detections/batch: \(status.code) \(object)") }
        return Report(
            accepted: (object["accepted"] as? Int ?? 0) + (object["already_stored"] as? Int ?? 0),
            rejected: object["rejected"] as? Int ?? 0)
    }

    func sendOne(_ json: String) async throws -> Bool {
        let (status, _) = try await execute(
            request(
                .POST, "/api/detections", contentType: "application/json", body: json,
                headers: [("Idempotency-Key", UUID().uuidString)]))
        return status == .created || status == .ok
    }
}

struct SimulatorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct SimulatedDetection {
    var cameraId: String
    var detectedAt: Date
    var objectType: String
    var confidence: Double
    var bbox: (Int, Int, Int, Int)

    func json() -> String {
        let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(detectedAt)
        let file = "/export/foscam/\(cameraId)/\(Int(detectedAt.timeIntervalSince1970 * 1000)).jpg"
        return
            #"{"camera_id":"\#(cameraId)","file_path":"\#(file)","detected_at":"\#(time)","object_type":"\#(objectType)","confidence":\#(String(format: "%.3f", confidence)),"bbox_x":\#(bbox.0),"bbox_y":\#(bbox.1),"bbox_width":\#(bbox.2),"bbox_height":\#(bbox.3)}"#
    }
}

/// What a camera sees: visits (a person, a car, an animal…) in bursts, more by day than by night.
enum CameraScene {
    static let names = ["Front Door", "Backyard", "Garage", "Driveway", "Side Gate", "Porch", "Patio", "Street"]

    /// Object types and their weights among visits.
    static let mix: [(String, Int)] = [
        ("person", 34), ("car", 24), ("dog", 10), ("cat", 9), ("bicycle", 7), ("package", 5), ("truck", 5),
        ("bird", 6),
    ]

    /// Visits per hour by hour of day (UTC): busy mornings and evenings, quiet nights.
    static func visitsPerHour(_ hour: Int) -> Double {
        switch hour {
        case 0..<5: 0.3
        case 5..<7: 1.0
        case 7..<9: 3.0
        case 9..<16: 1.8
        case 16..<20: 3.2
        case 20..<23: 1.2
        default: 0.5
        }
    }

    static func history(
        camera: String, from start: Date, to end: Date, random: inout SplitMix64
    ) -> [SimulatedDetection] {
        var detections: [SimulatedDetection] = []
        var hourStart = start
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        while hourStart < end {
            let rate = visitsPerHour(calendar.component(.hour, from: hourStart))
            // Poisson-ish: whole visits plus one more with the remaining probability.
            var visits = Int(rate)
            if random.unit() < rate - Double(visits) { visits += 1 }
            for _ in 0..<visits {
                let at = hourStart.addingTimeInterval(random.unit() * 3600)
                if at < end { detections += visit(camera: camera, at: at, random: &random) }
            }
            hourStart = hourStart.addingTimeInterval(3600)
        }
        return detections
    }

    /// A burst: 1–6 detections of the same thing a few seconds apart, sometimes with a second object.
    static func visit(camera: String, at start: Date, random: inout SplitMix64) -> [SimulatedDetection] {
        let object = pick(&random)
        let companion = random.unit() < 0.2 ? pick(&random) : nil
        let count = 1 + Int(random.next() % 6)
        var time = start
        var detections: [SimulatedDetection] = []
        for index in 0..<count {
            let type = index > 0 && companion != nil && random.unit() < 0.4 ? companion! : object
            // Mostly 0.55–0.88; a person is sometimes seen clearly (≥ 0.9: the fast path).
            var confidence = 0.55 + random.unit() * 0.33
            if type == "person" && random.unit() < 0.08 { confidence = 0.9 + random.unit() * 0.09 }
            if random.unit() < 0.05 { confidence = 0.3 + random.unit() * 0.2 }  // below the threshold
            let width = 40 + Int(random.next() % 300)
            let height = 40 + Int(random.next() % 400)
            detections.append(
                SimulatedDetection(
                    cameraId: camera, detectedAt: time, objectType: type, confidence: confidence,
                    bbox: (Int(random.next() % 1500), Int(random.next() % 800), width, height)))
            time = time.addingTimeInterval(2 + random.unit() * 8)
        }
        return detections
    }

    static func pick(_ random: inout SplitMix64) -> String {
        let total = mix.reduce(0) { $0 + $1.1 }
        var roll = Int(random.next() % UInt64(total))
        for (type, weight) in mix {
            if roll < weight { return type }
            roll -= weight
        }
        return mix[0].0
    }
}

/// A small seeded generator, so a seed gives the same history.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A Double in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
