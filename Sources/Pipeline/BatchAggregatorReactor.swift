import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synchronization

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
    /// A detection's answer doesn't wait on its batch: the batches close on their own clock.
    public var batchInterval: Duration { BatchInterval.background }

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

    static let metadata = EventMetadata(actor: SystemActor.batchAggregator)

    /// The open batches as this process last wrote them (see ``OpenBatchesMemory``).
    private let memory = OpenBatchesMemory()

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        let (token, configJSON) = try await Self.loadTokenAndConfig(on: connection, logger: logger)
        var configValues = try Self.configValues(configJSON)
        let configBefore = configValues
        // The batches are handed to the aggregator, not kept here as well: a batch's ids held
        // twice are copied whole at its next detection (tens of thousands of ids under a flood:
        // 19% of the server's pool time after 20 s of one; docs/BENCHMARKS.md, Ingest, session
        // 45). Memory has them again once this page's batch is written (or found unchanged).
        var state = try await memory.take(token: token) {
            try await OpenBatches.load(token: token, on: connection, logger: logger)
        }
        var aggregator = BatchAggregator(
            policy: defaults.applying(configValues).batchPolicy, open: state.takeBatches())
        var outputs: [BatchOutput] = []
        var causes: [BatchOutput: UUID] = [:]
        for event in events where !EventMetadata.isImported(event.metadata) {
            var decided: [BatchOutput] = []
            switch event.type {
            case DetectionRecorded.type:
                decided = aggregator.receive(
                    try BatchAggregator.Detection.decode(event.data), recordedAt: event.recordedAt)
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

        let ids = try await Self.securityEventIDs(
            for: outputs, count: aggregator.provisionalCount, on: connection, logger: logger)
        aggregator.assignIDs(ids)
        let resolved = outputs.map { (BatchAggregator.resolve($0, with: ids), causes[$0]) }
        try await append(resolved, on: connection, logger: logger)
        if aggregator.changed.isEmpty {
            state.batches = aggregator.open
            memory.remember(state)
        } else {
            let saved = try await state.save(
                aggregator.open, changed: aggregator.changed, on: connection, logger: logger)
            // Kept once written; if this transaction rolls back, the table keeps the old token
            // and the next page reads the batches again.
            memory.remember(saved)
        }
        if configValues != configBefore {
            let json = String(decoding: try JSONEncoder().encode(JSONValue.object(configValues)), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO config_values (config_values) VALUES (\(json)::jsonb)
                ON CONFLICT (only_row) DO UPDATE SET config_values = excluded.config_values
                """, logger: logger)
        }
    }

    /// The ids of the security events `outputs` open (`count` provisional ids, `-1, -2, …`). A
    /// batch whose opening the log already holds keeps the security event it opened there: a
    /// store moved by export and import (or any generation of this reactor that starts before the
    /// log's end) decides its history again, and its decisions must then be the stored ones,
    /// appended as retries (nothing written), not a second event of the same batch (refused: its
    /// deterministic event id is stored in another stream, and the aggregator stopped for good).
    /// New batches take ids from the sequence.
    static func securityEventIDs(
        for outputs: [BatchOutput], count: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> [Int64] {
        guard count > 0 else { return [] }
        var openings: [UUID: Int] = [:]
        for output in outputs {
            if case .opened(let opened) = output, opened.id < 0 { openings[output.eventID] = Int(-opened.id) - 1 }
        }
        var ids = [Int64](repeating: 0, count: count)
        var known = Set<Int>()
        let rows = try await connection.query(
            """
            SELECT event_id, (data->>'id')::int8 FROM events
            WHERE event_id = ANY(\(Array(openings.keys))::uuid[]) AND type = \(SecurityEventOpened.type)
            """, logger: logger)
        for try await (eventID, id) in rows.decode((UUID, Int64).self) {
            guard let index = openings[eventID] else { continue }
            ids[index] = id
            known.insert(index)
        }
        let missing = (0..<count).filter { !known.contains($0) }
        let fresh = try await IDSequence.securityEvents.take(missing.count, on: connection, logger: logger)
        for (index, id) in zip(missing, fresh) { ids[index] = id }
        return ids
    }

    /// The open batches' token (nil before they were first written) and the config values
    /// applied so far (`SystemConfigChanged`, in log order, one JSON object in `config_values`,
    /// written with the checkpoint): one round trip.
    static func loadTokenAndConfig(on connection: PostgresConnection, logger: Logger) async throws -> (UUID?, String?) {
        let rows = try await connection.query(
            """
            SELECT (SELECT token FROM open_batches_token), (SELECT config_values::text FROM config_values)
            """, logger: logger)
        for try await (token, config) in rows.decode((UUID?, String?).self) { return (token, config) }
        return (nil, nil)
    }

    static func configValues(_ json: String?) throws -> [String: JSONValue] {
        guard let json,
            case .object(let values) = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        else { return [:] }
        return values
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
}

/// The aggregator's open batches as the tables hold them: what the next save writes against.
///
/// A batch's detection ids are rows of `open_batch_detections`, so a page that adds
/// detections to a batch inserts just those, and a page writes only the batches it changed.
/// Every save writes a new token (`open_batches_token`).
struct OpenBatches: Sendable {
    var token: UUID?
    var batches: [String: OpenBatch]
    /// Per camera, the batch whose ids are in `open_batch_detections` and how many: what can be
    /// added to (a row written before that table keeps its ids in `batch`, and is written whole).
    var stored: [String: (batchId: String, count: Int)]
    /// The cameras with a row in `open_batches`.
    var cameras: Set<String> = []

    init(token: UUID?, batches: [String: OpenBatch], stored: [String: (batchId: String, count: Int)]) {
        self.token = token
        self.batches = batches
        self.stored = stored
        cameras = Set(batches.keys)
    }

    /// The batches, handed over: this state keeps only what was stored.
    mutating func takeBatches() -> [String: OpenBatch] {
        let taken = batches
        batches = [:]
        return taken
    }

    /// What the tables hold (`token` read in the same transaction).
    static func load(token: UUID?, on connection: PostgresConnection, logger: Logger) async throws -> OpenBatches {
        var state = OpenBatches(token: token, batches: [:], stored: [:])
        let rows = try await connection.query(
            """
            SELECT o.batch::text, d.ids FROM open_batches o
            LEFT JOIN LATERAL (
                SELECT array_agg(d.detection_id ORDER BY d.position) AS ids
                FROM open_batch_detections d WHERE d.camera_id = o.camera_id
            ) d ON true
            """, logger: logger)
        for try await (json, ids) in rows.decode((String, [Int64]?).self) {
            var batch = try EventCoding.decoder.decode(OpenBatch.self, from: Data(json.utf8))
            if batch.detectionIds.isEmpty {
                batch.detectionIds = ids ?? []
                state.stored[batch.cameraId] = (batch.batchId, batch.detectionIds.count)
            }
            state.batches[batch.cameraId] = batch
        }
        state.cameras = Set(state.batches.keys)
        return state
    }

    /// Writes `open` over what is stored, in one statement, under a new token; returns the new
    /// state. `changed`: the cameras whose batch changed since the state was stored (the others
    /// are written only if their ids were never stored apart).
    func save(
        _ open: [String: OpenBatch], changed: Set<String>, on connection: PostgresConnection, logger: Logger
    ) async throws
        -> OpenBatches
    {
        var headers: (cameras: [String], batches: [String]) = ([], [])
        var rewritten: [String] = []
        var added: (cameras: [String], positions: [Int32], ids: [Int64]) = ([], [], [])
        var stored: [String: (batchId: String, count: Int)] = [:]
        for (camera, batch) in open.sorted(by: { $0.key < $1.key }) {
            stored[camera] = (batch.batchId, batch.detectionIds.count)
            guard changed.contains(camera) || self.stored[camera] == nil else { continue }  // unchanged
            var header = batch
            header.detectionIds = []
            headers.cameras.append(camera)
            headers.batches.append(String(decoding: try EventCoding.encoder.encode(header), as: UTF8.self))
            var first = 0
            if let kept = self.stored[camera], kept.batchId == batch.batchId, kept.count <= batch.detectionIds.count {
                first = kept.count
            } else {
                rewritten.append(camera)
            }
            for position in first..<batch.detectionIds.count {
                added.cameras.append(camera)
                added.positions.append(Int32(position))
                added.ids.append(batch.detectionIds[position])
            }
        }
        let token = UUID.random()
        let cameras = Array(open.keys)
        // The cameras whose stored ids go: those with no open batch any more, and the rewritten.
        // Named, not `camera_id <> ALL(open)`: that reads every open batch's ids on every page
        // (2.8 ms a page under a flood of detections, growing with the batches).
        let cleared = Array(self.cameras.union(self.stored.keys).subtracting(open.keys)) + rewritten
        // The parts touch different cameras' rows, except `cleared` and `added` for a rewritten
        // batch: the delete sees the statement's snapshot, so it never takes the rows added.
        try await connection.query(
            """
            WITH gone AS (
                DELETE FROM open_batches WHERE camera_id <> ALL(\(cameras)::text[])
            ), cleared AS (
                DELETE FROM open_batch_detections WHERE camera_id = ANY(\(cleared)::text[])
            ), headers AS (
                INSERT INTO open_batches AS o (camera_id, batch)
                SELECT u.camera_id, u.batch::jsonb
                FROM unnest(\(headers.cameras)::text[], \(headers.batches)::text[]) AS u(camera_id, batch)
                ON CONFLICT (camera_id) DO UPDATE SET batch = excluded.batch
            ), added AS (
                INSERT INTO open_batch_detections (camera_id, position, detection_id)
                SELECT * FROM unnest(\(added.cameras)::text[], \(added.positions)::int4[], \(added.ids)::int8[])
            )
            INSERT INTO open_batches_token (token) VALUES (\(token))
            ON CONFLICT (only_row) DO UPDATE SET token = excluded.token
            """,
            logger: logger)
        return OpenBatches(token: token, batches: open, stored: stored)
    }
}

/// The open batches this process wrote last, with their token: while the table's token is the
/// same, they are what the table holds, and a page needs no read of them.
final class OpenBatchesMemory: Sendable {
    private let last = Mutex<OpenBatches?>(nil)

    /// The state at `token`, taken (memory is empty until ``remember(_:)``): from memory when it
    /// is the one written last here, else `load`ed.
    func take(token: UUID?, load: () async throws -> OpenBatches) async throws -> OpenBatches {
        let kept = last.withLock { last in
            defer { last = nil }
            return last
        }
        if let token, let kept, kept.token == token { return kept }
        return try await load()
    }

    func remember(_ state: OpenBatches) {
        last.withLock { $0 = state }
    }
}
