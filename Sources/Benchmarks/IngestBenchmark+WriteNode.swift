import API
import AsyncHTTPClient
import EventStore
import Foundation
import Logging
import PostgresNIO
import Simulator
import Synthetic

extension IngestBenchmark {
    /// The same single POSTs to a *write node*: a server with its projections off
    /// (`VIGIL_PROJECTIONS=off`, README "Scaling out"), whose read models another machine runs.
    /// It stands on a database of its own, so nothing on this machine follows its log: what is
    /// measured is the write path (HTTP, validation, the camera check, the group commit, and
    /// the tail every server keeps for its sockets), against the same pgbench.
    ///
    /// `probe`: where the flush probe commits (any database of the cluster: the WAL is shared).
    static func writeNode(
        settings: PostgresSettings, probe: PostgresSettings, http: HTTPClient, concurrency: Int, seconds: Int,
        meter: CPUMeter, in folder: URL, logger: Logger
    ) async throws -> (posts: LoadGenerators.Run, probe: LoadGenerators.Run, cost: CPUMeter.Cost) {
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench_write", logger: logger) { _, scratch in
            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, postgres: scratch)
            configuration.redis = nil
            configuration.runProjections = false
            // Nothing here applies a camera's registration: don't wait for it.
            configuration.readYourWritesTimeout = .milliseconds(10)
            // Its read-your-writes waits give up, as they should here: not worth a warning each.
            var quieter = logger
            quieter.logLevel = .error
            let app = try buildApplication(configuration, logger: quieter)
            return try await LiveServer.run(app, http: http, logger: logger) { server in
                let api = SimulatorAPI(http: http, base: server.base, key: nil)
                let cameras = try await (0..<4).asyncMap { try await api.registerCamera(CameraScene.names[$0]) }
                async let flushes = LoadGenerators.flushProbe(
                    "pgbench probe beside the write node's POSTs", settings: probe, seconds: seconds, in: folder)
                let before = meter.sample()
                let posts = try await LoadGenerators.wrk(
                    "wrk → POST /api/detections, write node", url: server.base + "/api/detections",
                    cameras: cameras, connections: concurrency, seconds: seconds, in: folder)
                let cost = meter.cost(since: before, requests: posts.requests)
                return (posts, try await flushes, cost)
            }
        }
    }
}
