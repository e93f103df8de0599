import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections

/// The parts of `vigil bench pages` that compare the route with the database alone: the first
/// page under load (wrk, 16 connections) against `pgbench` running the very statements the
/// route runs, and the stats route's latency.
extension PagesBenchmark {
    /// `GET /api/events?limit=100` by wrk against `pgbench` on the route's two statements (the
    /// settings' version lookup and the page, its values written in by the read model), both
    /// with `connections` clients, in the same run.
    static func throughput(
        _ http: LiveServer, settings: PostgresSettings, connections: Int, seconds: Int, client: PostgresClient,
        logger: Logger
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        guard
            let page = SecurityEventsReadModel.listSQL(
                SecurityEventFilter(), thresholds: .defaults, page: PageBounds(limit: 100))
        else { throw ValidationError("the list statement has a value pgbench can't be given") }
        let version = "SELECT version FROM streams WHERE stream = '\(SystemSettings.stream)'"
        // The statement, run here, gives the page the route gives (the same events, in order).
        let rows = try await client.query(PostgresQuery(unsafeSQL: page), logger: logger)
        var fromSQL: [Int] = []
        for try await (_, item, _, _) in rows.decode((Int64, String?, String?, String?).self) {
            guard let item, let data = item.data(using: .utf8),
                let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let id = object["id"] as? Int
            else { continue }
            fromSQL.append(id)
        }
        let response = try await http.execute("/api/events?limit=100")
        let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        let fromRoute = (body?["events"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
        guard fromSQL.prefix(100).elementsEqual(fromRoute), fromRoute.count == 100 else {
            throw ValidationError("the statement given to pgbench does not answer what the route answers")
        }

        let script = version + ";\n" + page + ";\n"
        // A short run sizes the measured one to about `seconds` (pgbench's -T can't be used from
        // here: it times with SIGALRM, blocked in this process's children).
        let probe = try await LoadGenerators.pgbench(
            "probe", script: script, settings: settings, clients: connections, perClient: 20, mode: "extended",
            in: folder)
        let perClient = max(50, Int(probe.perSecond * Double(seconds)) / connections)
        let database = try await LoadGenerators.pgbench(
            "pgbench, the route's 2 statements", script: script, settings: settings,
            clients: connections, perClient: perClient, mode: "extended", in: folder)
        let route = try await LoadGenerators.wrkGet(
            "wrk, GET /api/events?limit=100", url: http.base + "/api/events?limit=100", connections: connections,
            seconds: seconds, in: folder)
        print("")
        print(
            "GET /api/events?limit=100 under load: \(connections) connections, about \(seconds) s each, "
                + "same run (pgbench -M extended)"
        )
        print(row(["", "requests", "per s", "p50 ms", "p99 ms", "errors", "vs pgbench"]))
        for run in [database, route] {
            print(
                row([
                    run.name, String(run.requests), String(format: "%.0f", run.perSecond),
                    String(format: "%.1f", run.p50), String(format: "%.1f", run.p99), String(run.errors),
                    String(format: "%.2fx", run.perSecond / database.perSecond),
                ]))
        }
    }

    /// `/api/events/stats` (the whole history, and one camera), one connection.
    static func stats(_ http: LiveServer, samples: Int) async throws {
        print("")
        print("GET /api/events/stats — \(samples) requests each, one keep-alive connection")
        print(row(["", "", "p50 ms", "p99 ms"]))
        for uri in ["/api/events/stats", "/api/events/stats?camera_id=front_door"] {
            let latency = try await measure(http, uri, samples: samples, budget: .seconds(60))
            print(row([uri, "", String(format: "%.1f", latency.p50), String(format: "%.1f", latency.p99)]))
        }
    }
}
