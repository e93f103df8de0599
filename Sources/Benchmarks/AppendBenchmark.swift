import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synthetic

/// `vigil bench append`: the write paths of the store against COPY, the limit, on one
/// scratch database in one run.
struct AppendBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append throughput and latency: COPY (the limit), naive INSERTs, batched appends, group commit."
    )

    @Option(help: "Events written through COPY and through the batched paths.")
    var events: Int = 100_000

    @Option(help: "Events written one per transaction (the naive baseline and the group-commit appender).")
    var singleEvents: Int = 20_000

    @Option(help: "Events per COPY and per batched append call.")
    var batch: Int = 1000

    @Option(help: "Concurrent single-event callers.")
    var concurrency: Int = 64

    @Option(help: "Group-commit flushers (transactions in flight at once).")
    var flushers: Int = GroupCommitAppender.Options().flushers

    @Option(help: "Group-commit linger in milliseconds.")
    var lingerMs: Int = 0

    func run() async throws {
        let logger = Bench.quietLogger()
        var settings = try PostgresSettings.fromEnvironment()
        settings.maximumConnections = concurrency + 8
        let (events, singleEvents, batch, concurrency) = (self.events, self.singleEvents, self.batch, self.concurrency)
        let options = GroupCommitAppender.Options(linger: .milliseconds(lingerMs), flushers: flushers)

        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench", logger: logger) { client, _ in
            let store = EventStore(client: client, logger: logger)
            let version =
                try await client.query("SHOW server_version", logger: logger).decode(String.self)
                .first { _ in true } ?? "?"
            let sample = try Self.detection(0)
            print(
                "vigil bench append: PostgreSQL \(version), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
                    + "payload \(sample.data.utf8.count) B (DetectionRecorded), fsync on")
            print("")

            let copy = try await Self.copyLimit(client: client, logger: logger, events: events, batch: batch)
            let naive = try await Self.naiveInserts(
                client: client, logger: logger, events: singleEvents, concurrency: concurrency)
            let batched = try await Self.batchedAppends(store: store, events: events, batch: batch)
            let bulk = try await Self.bulkAppends(store: store, events: events, batch: batch)
            let (group, statistics) = try await Self.groupCommit(
                store: store, events: singleEvents, concurrency: concurrency, options: options)

            printTable([copy, naive, batched, bulk, group], baseline: copy)
            print("")
            print(
                String(
                    format: "group commit: %d transactions for %d appends (%.1f per transaction)",
                    statistics.transactions, statistics.requests,
                    Double(statistics.requests) / Double(max(1, statistics.transactions))))
            print(
                String(
                    format: "group commit vs naive INSERT per transaction: %.1fx",
                    group.eventsPerSecond / naive.eventsPerSecond))
        }
    }

    static func detection(_ sequence: Int) throws -> NewEvent {
        let payload = DetectionRecorded(
            id: Int64(sequence + 1),
            cameraId: "camera_\(sequence % 16)",
            filePath: "/export/foscam/camera_\(sequence % 16)/snap_\(sequence).jpg",
            detectedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(sequence)),
            objectType: ["person", "car", "dog", "cat", "bicycle", "package"][sequence % 6],
            confidence: 0.5 + Double(sequence % 50) / 100,
            bboxX: 120 + sequence % 300,
            bboxY: 80 + sequence % 200,
            bboxWidth: 64,
            bboxHeight: 128
        )
        return try NewEvent(payload, metadata: EventMetadata(actor: SystemActor.bench))
    }

    /// COPY into a scratch copy of the events table (same columns, indexes and defaults, no
    /// stream bookkeeping, no notification trigger): what PostgreSQL can take at most.
    static func copyLimit(
        client: PostgresClient, logger: Logger, events: Int, batch: Int
    ) async throws
        -> Measurement
    {
        try await client.query("CREATE TABLE bench_copy (LIKE events INCLUDING ALL)", logger: logger)
        let payloads = try (0..<events).map(detection)
        var latencies: [Duration] = []
        let clock = ContinuousClock()
        let start = clock.now
        for chunkStart in stride(from: 0, to: events, by: batch) {
            let chunk = payloads[chunkStart..<min(events, chunkStart + batch)]
            let began = clock.now
            try await client.withConnection { connection in
                try await connection.inTransaction(logger: logger) { connection in
                    try await connection.copyFrom(table: "bench_copy", columns: CopyText.eventColumns, logger: logger) {
                        writer in
                        var buffer = ByteBuffer()
                        for (offset, event) in chunk.enumerated() {
                            CopyText.writeRow(
                                event, stream: "copy-\(chunkStart)", version: Int64(offset + 1), to: &buffer)
                        }
                        try await writer.write(buffer)
                    }
                }
            }
            latencies.append(clock.now - began)
        }
        return Measurement(
            name: "COPY into a scratch copy of the table (the limit)",
            events: events,
            calls: latencies.count,
            elapsed: clock.now - start,
            latencies: latencies
        )
    }

    /// What a naive writer does: one INSERT, one transaction, per event, from many callers.
    static func naiveInserts(
        client: PostgresClient, logger: Logger, events: Int, concurrency: Int
    ) async throws
        -> Measurement
    {
        let perCaller = events / concurrency
        let clock = ContinuousClock()
        let start = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for caller in 0..<concurrency {
                group.addTask {
                    var latencies: [Duration] = []
                    for version in 1...perCaller {
                        let event = try detection(version)
                        let began = clock.now
                        try await client.query(
                            """
                            INSERT INTO events (event_id, stream, version, type, data, metadata)
                            VALUES (\(event.id), \("naive-\(caller)"), \(Int64(version)), \(event.type),
                                    \(event.data)::jsonb, \(event.metadata)::jsonb)
                            """,
                            logger: logger
                        )
                        latencies.append(clock.now - began)
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return Measurement(
            name: "INSERT, one event per transaction, \(concurrency) callers (naive)",
            events: perCaller * concurrency,
            calls: latencies.count,
            elapsed: clock.now - start,
            latencies: latencies
        )
    }

    /// `EventStore.append`, `batch` events per call, one caller.
    static func batchedAppends(store: EventStore, events: Int, batch: Int) async throws -> Measurement {
        try await timedChunks(
            "store append, \(batch) events per call (INSERT … unnest)",
            events: events,
            batch: batch
        ) { index, chunk in
            try await store.append(to: "batched-\(index % 16)", events: chunk)
        }
    }

    /// `EventStore.appendBulk` (the store's COPY path), `batch` events per call, 16 streams.
    static func bulkAppends(store: EventStore, events: Int, batch: Int) async throws -> Measurement {
        try await timedChunks("store bulk append, \(batch) events per call (COPY)", events: events, batch: batch) {
            _, chunk in
            _ = try await store.appendBulk(chunk.enumerated().map { (stream: "bulk-\($0 % 16)", event: $1) })
        }
    }

    /// Calls `write` with consecutive chunks of `events` detections, one caller, timing each call.
    static func timedChunks(
        _ name: String,
        events: Int,
        batch: Int,
        write: (Int, [NewEvent]) async throws -> Void
    ) async throws -> Measurement {
        let payloads = try (0..<events).map(detection)
        var latencies: [Duration] = []
        let clock = ContinuousClock()
        let start = clock.now
        for (index, chunkStart) in stride(from: 0, to: events, by: batch).enumerated() {
            let chunk = Array(payloads[chunkStart..<min(events, chunkStart + batch)])
            let began = clock.now
            try await write(index, chunk)
            latencies.append(clock.now - began)
        }
        return Measurement(
            name: name,
            events: events,
            calls: latencies.count,
            elapsed: clock.now - start,
            latencies: latencies
        )
    }

    /// The group-commit appender under `concurrency` callers appending one event at a time.
    static func groupCommit(
        store: EventStore, events: Int, concurrency: Int, options: GroupCommitAppender.Options
    )
        async throws -> (Measurement, GroupCommitAppender.Statistics)
    {
        let appender = GroupCommitAppender(store: store, options: options)
        let perCaller = events / concurrency
        let clock = ContinuousClock()
        return try await withThrowingTaskGroup(of: [Duration]?.self) { group in
            group.addTask {
                try await appender.run()
                return nil
            }
            let start = clock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { callers in
                for caller in 0..<concurrency {
                    callers.addTask {
                        var latencies: [Duration] = []
                        for sequence in 0..<perCaller {
                            let event = try detection(sequence)
                            let began = clock.now
                            try await appender.append(to: "group-\(caller)", events: [event])
                            latencies.append(clock.now - began)
                        }
                        return latencies
                    }
                }
                return try await callers.reduce(into: []) { $0 += $1 }
            }
            let elapsed = clock.now - start
            group.cancelAll()
            let measurement = Measurement(
                name: "group-commit appender, \(concurrency) single-event callers (\(options.flushers) flushers)",
                events: perCaller * concurrency,
                calls: latencies.count,
                elapsed: elapsed,
                latencies: latencies
            )
            return (measurement, appender.statistics)
        }
    }
}
