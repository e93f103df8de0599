import ArgumentParser
import AsyncHTTPClient
import EventStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Simulator
import Synchronization
import Synthetic

/// `vigil bench ws`: `--clients` WebSocket clients following `/ws/log` while detections are
/// posted at `--rate` per second for `--seconds`: post→delivery latency, messages delivered per
/// second, the server's resident memory, and whether every client got every event once and in
/// order. Measured against a bare hummingbird-websocket fan-out (`vigil bench ws-fanout`) with
/// the same clients and rate, then with two `vigil serve` on one database (clients split
/// between them, posts to the first). Each server is a process of its own; the clients run
/// here.
struct WebSocketBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws",
        abstract: "Clients on /ws/log: post→delivery latency, delivery rate and server RSS against a bare fan-out.")

    @Option(help: "WebSocket clients.")
    var clients: Int = 1000

    @Option(help: "Detections posted per second.")
    var rate: Int = 20

    @Option(help: "Seconds of posting per phase.")
    var seconds: Int = 15

    /// One phase's figures.
    struct Result {
        var name: String
        var delivered: Int
        var expected: Int
        var elapsed: Duration
        /// Post→delivery, nanoseconds, every message of every client.
        var latencies: [Int64]
        /// Commit→delivery, nanoseconds: from the event's `recorded_at` (PostgreSQL's clock, the
        /// same machine's) to its arrival; empty for the bare fan-out, which commits nothing.
        var fromCommit: [Int64]
        /// Answer→delivery, nanoseconds: from the moment the post was answered (the append
        /// acknowledged) to the message's arrival; negative when it came first.
        var afterAnswer: [Int64]
        var outOfOrder: Int
        /// How long each post took to be answered, nanoseconds, sorted.
        var posts: [Int64]
        /// Resident memory of each server process at the end (and its peak), bytes.
        var rss: [(now: Int, peak: Int)]
        /// The pgbench probe's commits beside the posting (``LoadGenerators/flushProbe(_:settings:seconds:in:)``):
        /// every post waits for a WAL flush, so a slow one shows in both. Nil for the bare fan-out.
        var flushes: LoadGenerators.Run?

        func percentile(_ p: Double) -> Double { Self.percentile(latencies, p) }

        /// The `p` quantile of sorted nanoseconds, in milliseconds.
        static func percentile(_ sorted: [Int64], _ p: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))
            return Double(sorted[index]) / 1e6
        }
    }

    func run() async throws {
        Self.raiseFileLimit()
        let logger = Bench.quietLogger()
        let settings = try PostgresSettings.fromEnvironment()
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(connectionPool: .init(idleTimeout: .seconds(10))))
        do {
            try await measure(executable: executable, settings: settings, http: http, logger: logger)
            try await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    func measure(executable: String, settings: PostgresSettings, http: HTTPClient, logger: Logger) async throws {
        let (clients, rate, seconds) = (self.clients, self.rate, self.seconds)
        print(
            "vigil bench ws: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(clients) clients in this "
                + "process, \(rate) posts/s for \(seconds) s per phase; each server a process of its own")
        print("")

        // Baseline: the bare fan-out, fed by POST /publish with messages of Vigil's size.
        let fanoutPort = try await Self.freePort()
        let fanout = try ChildProcess(executable, ["bench", "ws-fanout", "--port", "\(fanoutPort)"], environment: [:])
        let bare: Result
        do {
            try await Self.waitReady(http, "http://127.0.0.1:\(fanoutPort)/health")
            let pad = String(repeating: "x", count: 560)
            bare = try await Self.phase(
                "bare hummingbird-websocket fan-out", urls: ["ws://127.0.0.1:\(fanoutPort)/ws"], servers: [fanout],
                clients: clients, rate: rate, seconds: seconds, logger: logger
            ) { sequence in
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(fanoutPort)/publish")
                request.method = .POST
                let checkpoint = String(repeating: "0", count: 16) + String(format: "%016llx", UInt64(sequence + 1))
                let file = "/export/foscam/bench/\(sequence).jpg"
                request.body = .bytes(
                    ByteBuffer(
                        string:
                            #"{"type":"event","checkpoint":"\#(checkpoint)","data":{"file_path":"\#(file)","pad":"\#(pad)"}}"#
                    ))
                let response = try await http.execute(request, timeout: .seconds(30))
                guard response.status == .ok else { throw BenchError("POST /publish: \(response.status)") }
            }
            fanout.stop()
        } catch {
            fanout.stop()
            throw error
        }

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let vigil = try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench", logger: logger) {
            client, scratch in
            try await LoadGenerators.flushProbeTable(client, logger: logger)
            let probe: @Sendable () async throws -> LoadGenerators.Run = {
                try await LoadGenerators.flushProbe(settings: scratch, seconds: seconds, in: folder)
            }
            var environment = [
                "VIGIL_PG_HOST": scratch.host, "VIGIL_PG_PORT": "\(scratch.port)", "VIGIL_PG_USER": scratch.username,
                "VIGIL_PG_DATABASE": scratch.database, "VIGIL_REDIS": "off", "VIGIL_LOG_LEVEL": "warning",
            ]
            if let password = scratch.password { environment["VIGIL_PG_PASSWORD"] = password }
            let ports = [try await Self.freePort(), try await Self.freePort()]
            let first = try ChildProcess(executable, ["serve", "--port", "\(ports[0])"], environment: environment)
            var servers = [first]
            defer { for server in servers { server.stop() } }
            try await Self.waitReady(http, "http://127.0.0.1:\(ports[0])/ready")
            let api = SimulatorAPI(http: http, base: "http://127.0.0.1:\(ports[0])", key: nil)
            let camera = try await api.registerCamera("Bench")
            // Post n's detection is at `start` + n ms: its file path names n (see `sequence(in:)`).
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
            let base = Int64(start.timeIntervalSince1970 * 1000)
            let post: @Sendable (Int) async throws -> Void = { sequence in
                let detection = SimulatedDetection(
                    cameraId: camera, detectedAt: Date(timeIntervalSince1970: Double(base + Int64(sequence)) / 1000),
                    objectType: "car",
                    confidence: 0.8, bbox: (10, 20, 100, 200))
                guard try await api.sendOne(detection.json()) else { throw BenchError("POST /api/detections failed") }
            }
            let path = "/ws/log?types=DetectionRecorded"
            let one = try await Self.phase(
                "vigil /ws/log, 1 instance", urls: ["ws://127.0.0.1:\(ports[0])\(path)"], servers: servers,
                clients: clients, rate: rate, seconds: seconds, base: base, probe: probe, logger: logger, post: post)
            servers.append(
                try ChildProcess(
                    executable, ["serve", "--port", "\(ports[1])", "--projections", "off"], environment: environment))
            try await Self.waitReady(http, "http://127.0.0.1:\(ports[1])/ready")
            let two = try await Self.phase(
                "vigil /ws/log, 2 instances (posts to the 1st)", urls: ports.map { "ws://127.0.0.1:\($0)\(path)" },
                servers: servers, clients: clients, rate: rate, seconds: seconds, base: base, probe: probe,
                logger: logger, post: post)
            return [one, two]
        }
        Self.printTable([bare] + vigil)
    }

    /// Opens `clients` sockets (spread over `urls`), waits until each is subscribed, then calls
    /// `post(n)` `rate` times a second for `seconds`; each client times every message from the
    /// moment its post was sent, and checks that checkpoints only grow. `probe` runs beside the
    /// posting.
    static func phase(
        _ name: String, urls: [String], servers: [ChildProcess], clients: Int, rate: Int, seconds: Int,
        base: Int64 = 0, probe: (@Sendable () async throws -> LoadGenerators.Run)? = nil, logger: Logger,
        post: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> Result {
        let total = rate * seconds
        let sent = SendTimes(capacity: total)
        let answered = SendTimes(capacity: total)
        let (subscribed, subscription) = AsyncStream.makeStream(of: Void.self)
        let tallies = Tallies()
        FileHandle.standardError.write(Data("\(name): connecting \(clients) clients\n".utf8))
        let clock = ContinuousClock()
        let began = clock.now
        // Each client is a child returning false; the deadline one returns true.
        let (elapsed, flushes) = try await withThrowingTaskGroup(
            of: Bool.self, returning: (Duration, LoadGenerators.Run?).self
        ) { group in
            for index in 0..<clients {
                // A hundred handshakes at a time: the listen backlog is finite.
                if index > 0, index % 100 == 0 { try await Task.sleep(for: .milliseconds(50)) }
                let url = urls[index % urls.count]
                group.addTask {
                    do {
                        try await Self.follow(
                            url, total: total, base: base, sent: sent, clock: clock, subscription: subscription,
                            tallies: tallies,
                            logger: logger)
                    } catch {
                        FileHandle.standardError.write(Data("\(name): a client failed: \(error)\n".utf8))
                    }
                    return false
                }
            }
            // Every client subscribed, or two minutes have passed.
            let subscribing = Task {
                try await Task.sleep(for: .seconds(120))
                subscription.finish()
            }
            var ready = 0
            for await _ in subscribed {
                ready += 1
                if ready == clients { break }
            }
            subscribing.cancel()
            FileHandle.standardError.write(
                Data("\(name): \(ready) of \(clients) subscribed in \(clock.now - began); posting\n".utf8))
            async let flushes = probe?()
            // On schedule whatever the answers take: a post does not wait for the one before.
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { posting in
                for sequence in 0..<total {
                    try await clock.sleep(until: start + .seconds(Double(sequence) / Double(rate)))
                    posting.addTask {
                        sent.record(sequence, clock.now)
                        try await post(sequence)
                        answered.record(sequence, clock.now)
                    }
                }
                try await posting.waitForAll()
            }
            // Every client has all its messages, or 30 s have passed since the last post.
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return true
            }
            var finished = 0
            while finished < clients, let timedOut = try await group.next(), !timedOut { finished += 1 }
            group.cancelAll()
            let elapsed = clock.now - start
            return (elapsed, try await flushes)
        }
        var (perClient, fromCommit, delivered, outOfOrder) = tallies.state.withLock { $0 }
        let posts = (0..<total).compactMap { sequence -> Int64? in
            guard let sentAt = sent.time(of: sequence), let answer = answered.time(of: sequence) else { return nil }
            return Int64((answer - sentAt) / .nanoseconds(1))
        }
        // Each message after its post's answer by this much (negative: before).
        var afterAnswer: [Int64] = []
        for messages in perClient {
            for (sequence, latency) in messages {
                guard let sentAt = sent.time(of: sequence), let answer = answered.time(of: sequence) else { continue }
                afterAnswer.append(latency - Int64((answer - sentAt) / .nanoseconds(1)))
            }
        }
        var latencies = perClient.flatMap { $0.map(\.latency) }
        latencies.sort()
        fromCommit.sort()
        afterAnswer.sort()
        return Result(
            name: name, delivered: delivered, expected: total * clients, elapsed: elapsed, latencies: latencies,
            fromCommit: fromCommit, afterAnswer: afterAnswer, outOfOrder: outOfOrder, posts: posts.sorted(),
            rss: servers.map(\.residentMemory), flushes: flushes)
    }

    static func printTable(_ results: [Result]) {
        guard let bare = results.first else { return }
        print("")
        print(
            pad("server", 46, left: true) + pad("delivered", 16) + pad("msg/s", 9) + pad("p50 ms", 8)
                + pad("p99 ms", 8) + pad("max ms", 8) + pad("p99 ×", 7) + pad("commit p50/p99", 16)
                + pad("flush p99/max", 15) + pad("post p50/p99", 14) + pad("ack→msg p50/p99", 17) + pad("RSS MB", 14)
                + pad("RSS ×", 7)
                + pad("order", 7))
        for result in results {
            let rss = result.rss.map(\.now).reduce(0, +)
            let bareRSS = bare.rss.map(\.now).reduce(0, +)
            let rssText = result.rss.map { String($0.now >> 20) }.joined(separator: "+")
            print(
                pad(result.name, 46, left: true) + pad("\(result.delivered)/\(result.expected)", 16)
                    + pad(String(format: "%.0f", Double(result.delivered) / result.elapsed.seconds), 9)
                    + pad(String(format: "%.1f", result.percentile(0.5)), 8)
                    + pad(String(format: "%.1f", result.percentile(0.99)), 8)
                    + pad(String(format: "%.1f", result.percentile(1)), 8)
                    + pad(String(format: "%.2f", result.percentile(0.99) / bare.percentile(0.99)), 7)
                    + pad(
                        result.fromCommit.isEmpty
                            ? "—"
                            : String(
                                format: "%.1f/%.1f", Result.percentile(result.fromCommit, 0.5),
                                Result.percentile(result.fromCommit, 0.99)), 16)
                    + pad(result.flushes.map { String(format: "%.1f/%.1f", $0.p99, $0.max) } ?? "—", 15)
                    + pad(
                        String(
                            format: "%.1f/%.1f", Result.percentile(result.posts, 0.5),
                            Result.percentile(result.posts, 0.99)), 14)
                    + pad(
                        String(
                            format: "%.1f/%.1f", Result.percentile(result.afterAnswer, 0.5),
                            Result.percentile(result.afterAnswer, 0.99)), 17)
                    + pad(rssText, 14) + pad(String(format: "%.2f", Double(rss) / Double(bareRSS)), 7)
                    + pad(result.outOfOrder == 0 ? "ok" : "\(result.outOfOrder) bad", 7))
        }
        print("")
        print("delivered: messages received / posts × clients (every client must get every post once);")
        print("p50/p99/max: from the moment a post was sent to its message arriving at a client (ms);")
        print("commit p50/p99: from the event's recorded_at (PostgreSQL's clock) to its arrival (ms);")
        print(
            "flush p99/max: a pgbench client's one-row commits beside the posting, about 20/s (ms): the disk's WAL "
                + "flush, which every post waits for;")
        print("post p50/p99: how long each post took to be answered (ms);")
        print(
            "ack→msg p50/p99: from a post's answer to its message's arrival (ms; negative: before it); RSS at the end.")
    }
}
