import EventStore
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The load generators `vigil bench ingest` runs as processes of their own: `wrk` (single POSTs
/// over HTTP, with a Lua script) and `pgbench` (the database's own figure for the same work),
/// each for a fixed time, so the server, its database and the client share the machine as
/// they would in use.
enum LoadGenerators {
    /// What one timed run did.
    struct Run {
        var name: String
        var requests: Int
        var seconds: Double
        var p50: Double
        var p99: Double
        var max: Double
        var errors: Int

        var perSecond: Double { Double(requests) / seconds }
    }

    /// `wrk` POSTing detections to `url` for `seconds`, each request with its own
    /// `Idempotency-Key` (what the simulator and well-behaved workers send), round-robin over
    /// `cameras`.
    static func wrk(
        _ name: String, url: String, cameras: [String], connections: Int, seconds: Int, in folder: URL
    ) async throws -> Run {
        let names = cameras.map { "\"\($0)\"" }.joined(separator: ", ")
        return try await wrk(
            name, url: url, script: wrkPostScript.replacingOccurrences(of: "CAMERAS", with: names),
            connections: connections, seconds: seconds, in: folder)
    }

    /// `wrk` GETting `url` for `seconds` over `connections` connections.
    static func wrkGet(_ name: String, url: String, connections: Int, seconds: Int, in folder: URL) async throws -> Run
    {
        try await wrk(name, url: url, script: "", connections: connections, seconds: seconds, in: folder)
    }

    /// `wrk` with the Lua `script` (its requests; empty: GET the URL), summing up in JSON.
    private static func wrk(
        _ name: String, url: String, script requests: String, connections: Int, seconds: Int, in folder: URL
    ) async throws -> Run {
        let script = folder.appendingPathComponent("wrk-\(UUID().uuidString.prefix(8)).lua")
        try (requests + wrkSummary).write(to: script, atomically: true, encoding: .utf8)
        let output = try await runTool(
            "wrk",
            ["-t2", "-c\(connections)", "-d\(seconds)s", "--timeout", "10s", "-s", script.path, url],
            environment: [:], in: folder)
        // The script's `done` prints one JSON line last.
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let summary = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int]
        else { throw BenchError("wrk printed no summary:\n\(output)") }
        func milliseconds(_ key: String) -> Double { Double(summary[key] ?? 0) / 1000 }
        return Run(
            name: name, requests: summary["requests"] ?? 0, seconds: milliseconds("duration_us") / 1000,
            p50: milliseconds("p50_us"), p99: milliseconds("p99_us"), max: milliseconds("max_us"),
            errors: (summary["status_errors"] ?? 0) + (summary["socket_errors"] ?? 0))
    }

    /// `pgbench`: one INSERT of a detection event per transaction into `bench_events`, a copy of
    /// the log's table (`LIKE events INCLUDING ALL`: its columns, defaults and indexes) made on
    /// `database`, from `clients` connections, about 10,000 transactions per `seconds`; latencies
    /// from its per-transaction log. (A count, not `-T`: pgbench times `-T` with SIGALRM, which
    /// a child of this process inherits blocked, so it would never stop.)
    static func pgbench(
        _ name: String, settings: PostgresSettings, clients: Int, seconds: Int, in folder: URL
    ) async throws -> Run {
        try await pgbench(
            name, script: pgbenchInsertScript, settings: settings, clients: clients,
            perClient: max(50, seconds * 10_000 / max(1, clients)), in: folder)
    }

    /// `pgbench` running the SQL `script` as one transaction, `perClient` times on each of
    /// `clients` connections. `mode` is its `-M`: `prepared` parses once per connection,
    /// `extended` each time, as PostgresNIO's unnamed statements are.
    ///
    /// `rate`: transactions per second in all (`-R`), each timed from when it began, not from
    /// its schedule.
    static func pgbench(
        _ name: String, script text: String, settings: PostgresSettings, clients: Int, perClient: Int,
        mode: String = "prepared", rate: Int? = nil, in folder: URL
    ) async throws -> Run {
        let run = "pgbench-\(UUID().uuidString.prefix(8))"
        let script = folder.appendingPathComponent(run + ".sql")
        try text.write(to: script, atomically: true, encoding: .utf8)
        let prefix = folder.appendingPathComponent(run).path
        var environment: [String: String] = [:]
        if let password = settings.password { environment["PGPASSWORD"] = password }
        let output = try await runTool(
            "pgbench",
            [
                "-n", "-M", mode, "-c", "\(clients)", "-j", "\(min(2, clients))", "-t", "\(perClient)", "-f",
                script.path, "-l", "--log-prefix", prefix, "-h", settings.host, "-p", "\(settings.port)", "-U",
                settings.username, settings.database,
            ] + (rate.map { ["-R", "\($0)"] } ?? []),
            environment: environment, in: folder)
        guard let tpsLine = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(tpsLine.dropFirst(6).split(separator: " ").first ?? "")
        else { throw BenchError("pgbench printed no tps:\n\(output)") }
        // Each log line: client, transaction, latency µs, script, epoch s, µs, and with a rate
        // the schedule lag µs, which the latency includes.
        var latencies: [Double] = []
        let logs = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(run + ".") }
        for log in logs {
            let text = try String(contentsOf: folder.appendingPathComponent(log), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 3, let micros = Double(fields[2]) else { continue }
                let lag = fields.count >= 7 ? Double(fields[6]) ?? 0 : 0
                latencies.append((micros - lag) / 1000)
            }
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        let failed = output.split(separator: "\n").first { $0.hasPrefix("number of failed transactions") }
        let errors = failed.flatMap { Int($0.split(separator: ":").last?.split(separator: " ").first ?? "") } ?? 0
        let transactions = perClient * clients
        return Run(
            name: name, requests: transactions, seconds: Double(transactions) / tps, p50: percentile(0.5),
            p99: percentile(0.99), max: latencies.last ?? 0, errors: errors)
    }

    /// Makes `bench_events` on the scratch database (for ``pgbench(_:settings:clients:seconds:in:)``)
    /// and `bench_flushes` (for ``flushProbe(_:settings:seconds:in:)``).
    static func pgbenchTable(_ store: EventStore) async throws {
        try await store.client.query(
            "CREATE TABLE bench_events (LIKE events INCLUDING ALL)", logger: store.logger)
        try await flushProbeTable(store.client, logger: store.logger)
    }

    /// Makes `bench_flushes` on the scratch database (for ``flushProbe(_:settings:seconds:in:)``).
    static func flushProbeTable(_ client: PostgresClient, logger: Logger) async throws {
        try await client.query("CREATE TABLE bench_flushes (at timestamptz)", logger: logger)
    }

    /// The commits' flush beside a phase: one `pgbench` client committing a one-row insert
    /// (`bench_flushes`, nothing else reads it) 20 times a second for `seconds`. Each commit
    /// waits for the WAL's flush, as every commit of the phase does, so its slow ones show the
    /// disk's: a POST stall with slow probe commits at the same time is the disk's, not Vigil's
    /// (docs/BENCHMARKS.md, Ingest, session 44).
    static func flushProbe(
        _ name: String = "pgbench probe: one-row commits, about 20 a second", settings: PostgresSettings,
        seconds: Int, in folder: URL
    ) async throws -> Run {
        try await pgbench(
            name, script: flushProbeScript, settings: settings, clients: 1, perClient: 20 * seconds, rate: 20,
            in: folder)
    }

    static let flushProbeScript = "INSERT INTO bench_flushes VALUES (clock_timestamp());\n"

    /// The bare-framework baseline: a Hummingbird application with one route that decodes a
    /// detection's JSON and answers it encoded again, on a loopback port, while `body` runs.
    static func withEchoServer<Value: Sendable>(
        logger: Logger, _ body: (_ url: String) async throws -> Value
    ) async throws -> Value {
        let router = Router()
        router.post("/echo") { request, context -> Response in
            let detection = try await request.decode(as: EchoDetection.self, context: context)
            var response = try JSONEncoder().encode(detection, from: request, context: context)
            response.status = .created
            return response
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        return try await LiveServer.run(app, logger: logger) { server in try await body(server.base + "/echo") }
    }

    /// A detection as the echo route decodes it (the fields the bench sends).
    struct EchoDetection: Codable {
        var cameraId: String
        var filePath: String
        var detectedAt: String
        var objectType: String
        var confidence: Double
        var bboxX: Int
        var bboxY: Int
        var bboxWidth: Int
        var bboxHeight: Int

        enum CodingKeys: String, CodingKey {
            case cameraId = "camera_id", filePath = "file_path", detectedAt = "detected_at"
            case objectType = "object_type", confidence, bboxX = "bbox_x", bboxY = "bbox_y"
            case bboxWidth = "bbox_width", bboxHeight = "bbox_height"
        }
    }

    /// Runs `tool` (found on PATH) to its end and returns its standard output, or an error with
    /// both outputs; the outputs go to files in `folder`.
    ///
    /// It waits without holding a thread: the server measured runs in this process, on Swift's
    /// cooperative pool (as many threads as cores), and a thread blocked reading a pipe or in
    /// `waitUntilExit()` for the whole run would leave it one thread short of two.
    private static func runTool(
        _ tool: String, _ arguments: [String], environment: [String: String], in folder: URL
    ) async throws
        -> String
    {
        guard
            let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
                .map({ "\($0)/\(tool)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw BenchError("\(tool) is not installed (tools/setup --bench installs it)") }
        let run = folder.appendingPathComponent("\(tool)-\(UUID().uuidString.prefix(8))")
        let (printed, complained) = (run.appendingPathExtension("out"), run.appendingPathExtension("err"))
        for file in [printed, complained] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: printed)
        process.standardError = try FileHandle(forWritingTo: complained)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let text = try String(contentsOf: printed, encoding: .utf8)
        guard process.terminationStatus == 0 else {
            let errors = (try? String(contentsOf: complained, encoding: .utf8)) ?? ""
            throw BenchError("\(tool) exited with \(process.terminationStatus):\n\(text)\(errors)")
        }
        return text
    }

    static let wrkPostScript = #"""
        -- One detection per request, each with its own Idempotency-Key, round-robin over the cameras.
        local counter = 0
        local threads = {}
        local cameras = {CAMERAS}
        function setup(thread)
          thread:set("tid", #threads + 1)
          table.insert(threads, thread)
        end
        function init(args)
          prefix = string.format("wrk-%d-%d-", tid, os.time())
        end
        request = function()
          counter = counter + 1
          local body = string.format(
            '{"camera_id":"%s","file_path":"/media/%s%d.jpg","detected_at":"%s","object_type":"person",'
              .. '"confidence":0.6%d,"bbox_x":10,"bbox_y":20,"bbox_width":100,"bbox_height":200}',
            cameras[(counter % #cameras) + 1], prefix, counter, os.date("!%Y-%m-%dT%H:%M:%SZ"), counter % 10)
          return wrk.format("POST", wrk.path,
            {["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. counter}, body)
        end

        """#

    /// The end of every wrk script: its figures as one JSON line.
    static let wrkSummary = #"""
        done = function(summary, latency, requests)
          io.write(string.format(
            '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"status_errors":%d,"socket_errors":%d}\n',
            summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
            summary.errors.status,
            summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
        end
        """#

    static let pgbenchInsertScript = """
        INSERT INTO bench_events (event_id, stream, version, type, schema_version, data, metadata)
        VALUES (gen_random_uuid(), 'detections-' || gen_random_uuid(), 1, 'DetectionRecorded', 1,
          '{"id": 1, "camera_id": "front_door", "file_path": "/media/front_door/1.jpg", "file_type": "image/jpeg", "detected_at": "2026-11-29T09:46:41.997000Z", "object_type": "person", "confidence": 0.65, "bbox_x": 10, "bbox_y": 20, "bbox_width": 100, "bbox_height": 200}',
          '{"actor": "bench", "request_digest": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}');

        """
}
