import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections

/// The batch aggregator inside Vigil: detections in, `SecurityEventOpened`/`Closed` out.
///
/// It runs as a projection (one leased runner per cluster) whose `apply` appends the events
/// it decided in the runner's transaction, together with its open batches (`open_batches`) and
/// its checkpoint. A crash anywhere rolls all three back, so after a restart it goes on from
/// exactly what it had decided: no detection is lost, no batch is closed twice. The events'
/// ids are derived from the batch as well (``BatchOutput/eventID``): a decision made twice could
/// not be appended twice.
///
/// It follows `SystemConfigChanged` in log order: detections recorded after a change are batched
/// under the new window, idle time, confidence threshold and fast path.
///
/// A heartbeat lets it close quiet batches on time when no detection arrives. Imported history
/// (``EventMetadata/imported``: demo data, a bulk import) is skipped: its batches are in the log.
public struct BatchAggregatorReactor: Projection {
    public let name = "batch_aggregator"
    public let filter = LogFilter(types: [DetectionRecorded.type, CameraRemoved.type, SystemConfigChanged.type])
    public let heartbeat: Duration?
    public var isReactor: Bool { true }

    /// The configuration before any `SystemConfigChanged` (the server's defaults).
    let defaults: SystemConfig
    let clock: @Sendable () -> Date

    public init(
        heartbeat: Duration = .seconds(1),
        defaults: SystemConfig = .defaults,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.heartbeat = heartbeat
        self.defaults = defaults
        self.clock = clock
    }

    static let metadata = EventMetadata(actor: "batch-aggregator")

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        var configValues = try await Self.loadConfigValues(on: connection, logger: logger)
        let configBefore = configValues
        var aggregator = BatchAggregator(
            policy: defaults.applying(configValues).batchPolicy,
            open: try await Self.loadOpenBatches(on: connection, logger: logger))
        let before = aggregator.open
        var outputs: [BatchOutput] = []
        var causes: [BatchOutput: UUID] = [:]
        for event in events where !EventMetadata.isImported(event.metadata) {
            var decided: [BatchOutput] = []
            switch event.type {
            case DetectionRecorded.type:
                decided = aggregator.receive(try DetectionRecorded.decode(event.data), recordedAt: event.recordedAt)
            case CameraRemoved.type:
                decided = aggregator.close(camera: try CameraRemoved.decode(event.data).id)
            case SystemConfigChanged.type:
                // From here on, the new window, idle time, confidence and fast path apply
                // (open batches close by the new deadlines at the next detection or heartbeat).
                configValues.merge(try SystemSettings.values(of: event.type, data: event.data)) { $1 }
                aggregator.policy = defaults.applying(configValues).batchPolicy
                continue
            default:
                continue
            }
            for output in decided { causes[output] = event.id }
            outputs += decided
        }
        // Log time: the newest event of the page, or the wall clock when the log is quiet.
        outputs += aggregator.advance(to: events.map(\.recordedAt).max() ?? clock())

        let ids = try await IDSequence.securityEvents.take(aggregator.provisionalCount, on: connection, logger: logger)
        aggregator.assignIDs(ids)
        let resolved = outputs.map { (BatchAggregator.resolve($0, with: ids), causes[$0]) }
        try await append(resolved, on: connection, logger: logger)
        if aggregator.open != before { try await Self.save(aggregator.open, on: connection, logger: logger) }
        if configValues != configBefore {
            let json = String(decoding: try JSONEncoder().encode(JSONValue.object(configValues)), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO config_values (config_values) VALUES (\(json)::jsonb)
                ON CONFLICT (only_row) DO UPDATE SET config_values = excluded.config_values
                """, logger: logger)
        }
    }

    /// The config values applied so far (`SystemConfigChanged`, in log order), one JSON object in
    /// `config_values`, written with the checkpoint.
    static func loadConfigValues(on connection: PostgresConnection, logger: Logger) async throws -> [String: JSONValue]
    {
        let rows = try await connection.query("SELECT config_values::text FROM config_values", logger: logger)
        for try await json in rows.decode(String.self) {
            if case .object(let values) = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)) {
                return values
            }
        }
        return [:]
    }

    private func append(
        _ outputs: [(BatchOutput, UUID?)], on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard !outputs.isEmpty else { return }
        // One request per security event stream, its events in decision order.
        var requests: [AppendRequest] = []
        var index: [String: Int] = [:]
        for (output, cause) in outputs {
            var metadata = Self.metadata
            metadata.causationId = cause?.uuidString
            let event: NewEvent
            let stream: String
            switch output {
            case .opened(let opened):
                metadata.correlationId = opened.batchId
                event = try NewEvent(opened, id: output.eventID, metadata: metadata)
                stream = opened.stream
            case .closed(let closed):
                event = try NewEvent(closed, id: output.eventID, metadata: metadata)
                stream = closed.stream
            }
            if let at = index[stream] {
                requests[at].events.append(event)
            } else {
                index[stream] = requests.count
                requests.append(AppendRequest(stream: stream, events: [event]))
            }
        }
        let transaction = EventStoreTransaction(connection: connection, logger: logger)
        for result in try await transaction.appendBatch(requests) { _ = try result.get() }
    }

    static func loadOpenBatches(on connection: PostgresConnection, logger: Logger) async throws -> [OpenBatch] {
        var batches: [OpenBatch] = []
        let rows = try await connection.query("SELECT batch::text FROM open_batches", logger: logger)
        for try await json in rows.decode(String.self) {
            batches.append(try EventCoding.decoder.decode(OpenBatch.self, from: Data(json.utf8)))
        }
        return batches
    }

    private static func save(
        _ open: [String: OpenBatch], on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        let cameras = Array(open.keys)
        let batches = try cameras.map { String(decoding: try EventCoding.encoder.encode(open[$0]!), as: UTF8.self) }
        try await connection.query("DELETE FROM open_batches", logger: logger)
        guard !cameras.isEmpty else { return }
        try await connection.query(
            """
            INSERT INTO open_batches (camera_id, batch)
            SELECT * FROM unnest(\(cameras)::text[], \(batches)::jsonb[])
            """,
            logger: logger)
    }
}
