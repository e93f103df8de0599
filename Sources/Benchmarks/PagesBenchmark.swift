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

/// `vigil bench pages`: builds the read models of a large synthetic history from the log (and
/// rebuilds them), then measures `GET /api/events?limit=100` over real HTTP at several depths,
/// by cursor and by offset, with and without filters, in one run on one scratch database.
struct PagesBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pages",
        abstract:
            "Read-model build and rebuild speed; page latency by depth, cursor vs offset; pages under load vs pgbench."
    )

    @Option(help: "Security events in the history (each with one detection: four log events).")
    var events: Int = 1_000_000

    @Option(help: "Cursor requests measured per (filter, depth).")
    var samples: Int = 200

    @Option(help: "Offset requests measured per (filter, depth), at most (60 s budget each; at least 3).")
    var offsetSamples: Int = 20

    @Option(help: "Events per projection batch.")
    var batch: Int = ProjectionRunner.Options().batchSize

    @Option(help: "Events per batch of a rebuild that reads the log on the server.")
    var rebuildBatch: Int = ProjectionRunner.Options().rebuildBatchSize

    @Flag(help: "Skip the timed rebuild of every read model.")
    var skipRebuild = false

    @Option(help: "Connections of the load run (wrk, and pgbench clients).")
    var connections: Int = 16

    @Option(help: "Seconds of each load run.")
    var seconds: Int = 10

    @Flag(help: "A small run (20,000 security events, fewer samples, 3 s load runs): about a minute.")
    var quick = false

    @Flag(help: "Keep the scratch database (its name is printed) instead of dropping it.")
    var keep = false

    func run() async throws {
        let logger = Bench.quietLogger()
        let settings = try PostgresSettings.fromEnvironment()
        let quick = self.quick
        let (events, samples) = quick ? (20_000, min(self.samples, 50)) : (self.events, self.samples)
        let (batch, skipRebuild, rebuildBatch) = (self.batch, self.skipRebuild, self.rebuildBatch)
        let (connections, seconds) = (self.connections, quick ? min(self.seconds, 3) : self.seconds)
        let offsetSamples = quick ? min(self.offsetSamples, 5) : self.offsetSamples
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench_pages", logger: logger, keep: keep) {
            client, scratch in
            let store = EventStore(client: client, logger: logger)
            let version =
                try await client.query("SHOW server_version", logger: logger).decode(String.self).first { _ in true }
                ?? "?"
            print(
                "vigil bench pages: PostgreSQL \(version), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
                    + "\(events) security events, database \(scratch.database)")

            // 1. The history, into the log.
            let appendStart = ContinuousClock.now
            let logEvents = try await Self.appendHistory(events, to: store)
            // Statistics, as autovacuum keeps them on a log that grew over time (a bulk load
            // minutes ago may not have any yet, and its reads would be planned blind).
            try await client.query("VACUUM (ANALYZE) events", logger: logger)
            let appendTime = appendStart.duration(to: .now).seconds
            Self.endProgress(
                String(
                    format: "appended %d log events in %.1f s (%.0f events/s, bulk COPY)", logEvents, appendTime,
                    Double(logEvents) / appendTime))

            // 2. The server, its runners building the read models from the log.
            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, postgres: scratch)
            configuration.projectionOptions = .init(
                batchSize: batch, rebuildBatchSize: rebuildBatch, leaseRetry: .milliseconds(100))
            let app = try buildApplication(configuration, logger: logger)
            try await LiveServer.run(app, logger: logger) { http in
                let buildStart = ContinuousClock.now
                // A dashboard's load meanwhile: a page every 10 ms, timed.
                let load = Task { try await Self.servePages(http) }
                defer { load.cancel() }  // when the wait throws
                try await Self.waitForReadModels(store, generation: 1, since: buildStart, label: "building")
                let built = buildStart.duration(to: .now).seconds
                load.cancel()
                let pages = try await load.value
                Self.endProgress(
                    String(
                        format: "built every read model from the log in %.1f s (%.0f log events/s); ", built,
                        Double(logEvents) / built) + Self.servedMeanwhile(pages))

                if !skipRebuild {
                    // 3. Rebuild every read model while the server keeps serving.
                    try await Self.rebuildAll(store, http: http, logEvents: logEvents)
                }

                // 4. The whole list by cursor: every event once, the same count on every page.
                try await Self.walk(http, expected: events)

                // 5. Page latency by depth.
                print("")
                print(
                    "GET /api/events?limit=100 — \(samples) cursor and \(offsetSamples) offset requests per row, "
                        + "milliseconds over loopback HTTP, one keep-alive connection")
                print(
                    Self.row([
                        "filter", "depth", "cursor p50", "cursor p99", "offset p50", "offset p99", "offset/cursor p99",
                    ]))
                for filter in ["", "camera_id=front_door", "camera_id=front_door&risk_level=high"] {
                    let total = try await Self.count(http, filter)
                    let depths =
                        filter.isEmpty
                        ? [0, 10_000, 500_000, 900_000].filter { $0 < total }
                        : [0, total / 100, total / 2, total * 9 / 10]
                    let base = "/api/events?limit=100" + (filter.isEmpty ? "" : "&" + filter)
                    var cursors: [String] = []
                    for depth in depths {
                        let cursor = try await Self.cursor(at: depth, filter: filter, client: client, logger: logger)
                        cursors.append(cursor.map { base + "&cursor=" + $0 } ?? base)
                    }
                    // Cursor pages round-robin over the depths, so the machine's noise falls on
                    // all of them alike.
                    var byCursor = Array(repeating: [Duration](), count: depths.count)
                    for round in 0..<(samples + 3) {
                        for (index, uri) in cursors.enumerated() {
                            let elapsed = try await Self.timed(http, uri)
                            if round >= 3 { byCursor[index].append(elapsed) }
                        }
                    }
                    let atZero = Self.percentiles(byCursor[0]).p99
                    for (index, depth) in depths.enumerated() {
                        let cursor = Self.percentiles(byCursor[index])
                        let offset = try await Self.measure(
                            http, base + "&offset=\(depth)", samples: offsetSamples, budget: .seconds(60))
                        print(
                            Self.row([
                                filter.isEmpty ? "none" : filter, "\(depth)",
                                String(format: "%.1f", cursor.p50), String(format: "%.1f", cursor.p99),
                                String(format: "%.1f", offset.p50), String(format: "%.1f", offset.p99),
                                String(format: "%.1fx", offset.p99 / cursor.p99),
                            ])
                                + (depth > 0
                                    ? String(format: "   cursor p99 vs depth 0: %.2fx", cursor.p99 / atZero) : ""))
                    }
                }

                // 6. The stats, and the first page under load against the database alone.
                try await Self.stats(http, samples: samples)
                try await Self.throughput(
                    http, settings: scratch, connections: connections, seconds: seconds, client: client, logger: logger)
            }
        }
    }

    struct ValidationError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Walks `/api/events` with `limit=1000` by `next_cursor` and checks that each id comes once,
    /// in order, and that `count` is the same on every page.
    static func walk(_ http: LiveServer, expected: Int) async throws {
        let start = ContinuousClock.now
        var seen = Set<Int>()
        var counts = Set<Int>()
        var pages = 0
        var previous = Int.max
        var inOrder = true
        var cursor: String?
        repeat {
            let uri = "/api/events?limit=1000" + (cursor.map { "&cursor=" + $0 } ?? "")
            let response = try await http.execute(uri)
            guard response.status == .ok,
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
                    as? [String: Any],
                let items = body["events"] as? [[String: Any]]
            else { throw ValidationError("walk: page \(pages) failed") }
            for item in items {
                let id = item["id"] as? Int ?? 0
                seen.insert(id)
                // Synthetic events start in id order, so newest first is descending ids here.
                if id >= previous { inOrder = false }
                previous = id
            }
            counts.insert(body["count"] as? Int ?? -1)
            pages += 1
            cursor = (body["next_cursor"] as? String)?.addingPercentEncoding(withAllowedCharacters: .alphanumerics)
        } while cursor != nil
        let ok = seen.count == expected && counts == [expected] && inOrder
        let countText = counts.sorted().map(String.init).joined(separator: "/")
        print(
            "cursor walk, limit=1000: \(pages) pages, \(seen.count) distinct events (expected \(expected)), "
                + "count on every page \(countText), "
                + String(format: "%.1f s: ", start.duration(to: .now).seconds)
                + (ok ? "each exactly once, in order, count equal on every page" : "FAILED"))
        guard ok else { throw ValidationError("the cursor walk did not see every event exactly once") }
    }

    static func row(_ cells: [String]) -> String {
        let widths = [38, 8, 11, 11, 11, 11, 18]
        return zip(cells, widths).enumerated().map { index, pair in
            let (text, width) = pair
            let padding = String(repeating: " ", count: max(0, width - text.count))
            return index == 0 ? text + padding : padding + text
        }.joined(separator: " ")
    }

    static func progress(_ what: String, _ done: Int, _ total: Int, since start: ContinuousClock.Instant) {
        let seconds = start.duration(to: .now).seconds
        let line =
            "\r\(what) "
            + String(format: "%d/%d (%.0f%%, %.0f s)", done, total, 100 * Double(done) / Double(max(total, 1)), seconds)
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Appends a synthetic history of `events` security events (four log events each, and the
    /// cameras) in bulk, showing progress; returns the number of log events.
    static func appendHistory(_ events: Int, to store: EventStore) async throws -> Int {
        let history = SyntheticHistory(cameraCount: 4, start: Date(timeIntervalSince1970: 1_700_000_000), spacing: 30)
        let start = ContinuousClock.now
        try await store.appendSynthetic(history, events: 0..<events, chunk: 10_000) { done in
            if done % 100_000 == 0 || done == events { progress("appending", done, events, since: start) }
        }
        return events * 4 + history.cameras.count
    }

    static func endProgress(_ line: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        print(line)
    }

    /// Waits until all read models are live in `generation` and have caught up with the log.
    static func waitForReadModels(
        _ store: EventStore, generation: Int32, since start: ContinuousClock.Instant, label: String
    ) async throws {
        while true {
            let statuses = try await store.projectionStatuses().filter { ReadModels.named($0.name) != nil }
            if statuses.count == ReadModels.all.count,
                statuses.allSatisfy({ $0.generation >= generation && $0.rebuild == nil && $0.lagEvents == 0 })
            {
                return
            }
            let applied = statuses.map(\.eventsApplied).reduce(0, +)
            let seconds = start.duration(to: .now).seconds
            FileHandle.standardError.write(
                Data(("\r\(label): " + String(format: "%d events applied (%.0f s)", applied, seconds)).utf8))
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Rebuilds every read model at once while `http` is asked for a page every 10 ms (timed), and says where the
    /// time went: per read model, when its rebuild had applied the log (the bulk load) and when
    /// it was swapped in (after its indexes, `VACUUM (ANALYZE)` and the last catch-up).
    static func rebuildAll(_ store: EventStore, http: LiveServer, logEvents: Int) async throws {
        let start = ContinuousClock.now
        var generations: [String: Int32] = [:]
        for projection in ReadModels.all {
            generations[projection.name] = try await store.requestRebuild(of: projection)
        }
        var loaded: [String: Double] = [:]
        var swapped: [String: (seconds: Double, applied: Int64)] = [:]
        // A dashboard's load meanwhile: a page every 10 ms, timed.
        let load = Task { try await servePages(http) }
        defer { load.cancel() }
        while swapped.count < generations.count {
            try await Task.sleep(for: .milliseconds(250))
            let seconds = start.duration(to: .now).seconds
            var text: [String] = []
            for status in try await store.projectionStatuses() {
                guard let generation = generations[status.name], swapped[status.name] == nil else { continue }
                if let rebuild = status.rebuild {
                    if rebuild.progress >= 1 && loaded[status.name] == nil { loaded[status.name] = seconds }
                    text.append(status.name + String(format: " %.0f%%", rebuild.progress * 100))
                } else if status.generation >= generation {
                    swapped[status.name] = (seconds, status.eventsApplied)
                    if loaded[status.name] == nil { loaded[status.name] = seconds }
                }
            }
            FileHandle.standardError.write(
                Data(
                    ("\r\u{1B}[Krebuilding: " + text.joined(separator: ", ") + String(format: " (%.0f s)", seconds))
                        .utf8))
        }
        let total = start.duration(to: .now).seconds
        load.cancel()
        let pages = try await load.value
        let applied = swapped.values.map(\.applied).reduce(0, +)
        endProgress(
            String(
                format: "rebuilt every read model (%d at once) from %d log events in %.1f s: %.0f log events/s "
                    + "(%lld events applied in all); ",
                generations.count, logEvents, total, Double(logEvents) / total, applied) + servedMeanwhile(pages))
        print(row(["read model", "applied", "loaded at s", "swapped at s", "applied/s", "index+vacuum s"]))
        for (name, done) in swapped.sorted(by: { $0.value.seconds < $1.value.seconds }) {
            let load = loaded[name] ?? done.seconds
            print(
                row([
                    name, String(done.applied), String(format: "%.1f", load), String(format: "%.1f", done.seconds),
                    String(format: "%.0f", Double(done.applied) / max(load, 0.001)),
                    String(format: "≤ %.1f", done.seconds - load),
                ]))
        }
    }

    static func rebuildProgress(_ store: EventStore, since start: ContinuousClock.Instant) async throws {
        let statuses = try await store.projectionStatuses().filter { $0.rebuild != nil }
        let text = statuses.map { $0.name + String(format: " %.0f%%", ($0.rebuild?.progress ?? 0) * 100) }
            .joined(separator: ", ")
        FileHandle.standardError.write(
            Data(("\rrebuilding: \(text)" + String(format: " (%.0f s)   ", start.duration(to: .now).seconds)).utf8))
    }

    static func count(_ http: LiveServer, _ filter: String) async throws -> Int {
        let response = try await http.execute("/api/events?limit=1&" + filter)
        let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return body?["count"] as? Int ?? 0
    }

    /// The cursor that starts a page at `depth` (nil at 0), as a client walking there would hold.
    static func cursor(at depth: Int, filter: String, client: PostgresClient, logger: Logger) async throws -> String? {
        guard depth > 0 else { return nil }
        var conditions = ["NOT hidden"]
        if filter.contains("camera_id=front_door") { conditions.append("camera_id = 'front_door'") }
        if filter.contains("risk_level=high") {
            let high = SeverityThresholds.defaults.scores(of: .high)!
            conditions.append("risk_score BETWEEN \(high.lowerBound) AND \(high.upperBound)")
        }
        let rows = try await client.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT id, vigil_ts(started_at) FROM security_events WHERE \(conditions.joined(separator: " AND "))
                    ORDER BY started_at DESC, id DESC OFFSET \(depth - 1) LIMIT 1
                    """), logger: logger)
        for try await (id, time) in rows.decode((Int64, String).self) {
            let json = #"{"id":\#(id),"created_at":"\#(time)"}"#
            return Data(json.utf8).base64EncodedString().addingPercentEncoding(withAllowedCharacters: .alphanumerics)
        }
        return nil
    }

    /// `GET /api/events?limit=100` every 10 ms until cancelled: how long each took.
    static func servePages(_ http: LiveServer) async throws -> [Duration] {
        var latencies: [Duration] = []
        while !Task.isCancelled {
            do {
                latencies.append(try await timed(http, "/api/events?limit=100"))
            } catch  where Task.isCancelled {
                break
            }
            do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
        }
        return latencies
    }

    /// What ``servePages(_:)`` saw, for a report's line.
    static func servedMeanwhile(_ pages: [Duration]) -> String {
        let (p50, p99) = percentiles(pages)
        return String(
            format: "%d pages served meanwhile (one every 10 ms), all 200: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            pages.count, p50, p99, (pages.max() ?? .zero).seconds * 1000)
    }

    static func timed(_ http: LiveServer, _ uri: String) async throws -> Duration {
        let start = ContinuousClock.now
        let response = try await http.execute(uri)
        let elapsed = start.duration(to: .now)
        guard response.status == .ok else { throw ValidationError("\(uri): \(response.status)") }
        return elapsed
    }

    static func percentiles(_ latencies: [Duration]) -> (p50: Double, p99: Double) {
        let measurement = Measurement(name: "", events: 0, calls: latencies.count, elapsed: .zero, latencies: latencies)
        return (measurement.percentile(0.5), measurement.percentile(0.99))
    }

    /// p50 and p99 of up to `samples` sequential GETs (after one unmeasured warm-up), stopping
    /// early (after at least 3) once `budget` is spent.
    static func measure(
        _ http: LiveServer, _ uri: String, samples: Int, budget: Duration
    ) async throws
        -> (p50: Double, p99: Double)
    {
        _ = try await timed(http, uri)
        let start = ContinuousClock.now
        var latencies: [Duration] = []
        while latencies.count < samples && (latencies.count < 3 || start.duration(to: .now) < budget) {
            latencies.append(try await timed(http, uri))
        }
        return percentiles(latencies)
    }
}
