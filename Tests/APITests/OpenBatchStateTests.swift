import Domain
import EventStore
import Foundation
import Logging
import Pipeline
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// The batch aggregator's stored state (`open_batches`): a page appends only its new detection
/// ids, rows written before `open_batch_detections` existed are read and rewritten, and the state a
/// runner keeps in memory is never trusted past a transaction that rolled back.
@Suite struct OpenBatchStateTests {
    static let camera = "porch"

    static func detection(_ id: Int64, at: Date) throws -> RecordedEvent {
        let detection = DetectionRecorded(
            id: id, cameraId: camera, filePath: "/x/\(id).jpg", detectedAt: at, objectType: "car", confidence: 0.7,
            bboxX: 1, bboxY: 1, bboxWidth: 10, bboxHeight: 10)
        return try recorded(NewEvent(detection, metadata: EventMetadata(actor: "test")), stream: detection.stream)
    }

    static func recorded(_ event: NewEvent, stream: String) -> RecordedEvent {
        RecordedEvent(
            checkpoint: .start, id: event.id, stream: stream, version: 1, type: event.type,
            schemaVersion: event.schemaVersion, data: event.data, metadata: event.metadata, recordedAt: Date())
    }

    /// Applies `events` in a transaction of its own, committed unless `rollBack`.
    static func apply(
        _ reactor: BatchAggregatorReactor, _ events: [RecordedEvent], store: EventStore, rollBack: Bool = false
    ) async throws {
        struct RolledBack: Error {}
        do {
            try await store.client.withConnection { connection in
                try await connection.inTransaction(logger: testLogger) { connection in
                    try await connection.query(
                        "SET LOCAL search_path TO \(unescaped: reactor.schema(generation: 1)), public",
                        logger: testLogger)
                    try await reactor.apply(events, on: connection, logger: testLogger)
                    if rollBack { throw RolledBack() }
                }
            }
        } catch is RolledBack {
        } catch let error as PostgresTransactionError where error.closureError is RolledBack {}
    }

    /// The stored batch: the ids in its JSON, and its rows of `open_batch_detections`.
    static func row(_ store: EventStore) async throws -> (inJSON: Int, column: [Int64]?)? {
        let rows = try await store.client.query(
            """
            SELECT jsonb_array_length(batch->'detectionIds'),
                   (SELECT array_agg(detection_id ORDER BY position)
                    FROM projection_batch_aggregator_1.open_batch_detections WHERE camera_id = \(camera))
            FROM projection_batch_aggregator_1.open_batches WHERE camera_id = \(camera)
            """, logger: testLogger)
        for try await (inJSON, column) in rows.decode((Int, [Int64]?).self) { return (inJSON, column) }
        return nil
    }

    @Test("an old row is read and rewritten; pages append their ids; a rolled-back page leaves no trace")
    func storedStateFollowsTheTransactions() async throws {
        try await withScratchDatabase { store, _ in
            let reactor = BatchAggregatorReactor()
            try await store.registerProjections([reactor])
            let now = Date()
            // A batch as the aggregator stored it before `open_batch_detections`: its ids in the JSON.
            let legacy = OpenBatch(
                id: 7, cameraId: Self.camera, batchId: "porch-1", startedAt: now.addingTimeInterval(-20),
                lastDetectionAt: now.addingTimeInterval(-10), openedRecordedAt: now.addingTimeInterval(-5),
                lastRecordedAt: now.addingTimeInterval(-5), detectionIds: [1, 2], objectTypes: ["car"])
            let json = String(decoding: try EventCoding.encoder.encode(legacy), as: UTF8.self)
            try await store.client.query(
                """
                INSERT INTO projection_batch_aggregator_1.open_batches (camera_id, batch)
                VALUES (\(Self.camera), \(json)::jsonb)
                """, logger: testLogger)

            try await Self.apply(reactor, [try Self.detection(3, at: now)], store: store)
            var row = try #require(try await Self.row(store))
            #expect(row.inJSON == 0)
            #expect(row.column == [1, 2, 3])

            // Detection 4's page rolls back; detection 5's commits.
            try await Self.apply(reactor, [try Self.detection(4, at: now)], store: store, rollBack: true)
            row = try #require(try await Self.row(store))
            #expect(row.column == [1, 2, 3])
            try await Self.apply(reactor, [try Self.detection(5, at: now)], store: store)
            row = try #require(try await Self.row(store))
            #expect(row.column == [1, 2, 3, 5])

            // Removing the camera closes the batch with exactly the committed detections.
            let removed = try NewEvent(
                CameraRemoved(id: Self.camera, removedAt: now), metadata: EventMetadata(actor: "test"))
            try await Self.apply(reactor, [Self.recorded(removed, stream: Camera.stream(Self.camera))], store: store)
            #expect(try await Self.row(store) == nil)
            let left = try await store.client.query(
                "SELECT count(*)::int8 FROM projection_batch_aggregator_1.open_batch_detections", logger: testLogger)
            for try await count in left.decode(Int64.self) { #expect(count == 0) }
            let closed = try await store.client.query(
                "SELECT data::text FROM events WHERE type = 'SecurityEventClosed'", logger: testLogger)
            var events: [SecurityEventClosed] = []
            for try await data in closed.decode(String.self) { events.append(try SecurityEventClosed.decode(data)) }
            #expect(events.map(\.detectionIds) == [[1, 2, 3, 5]])
            #expect(events.first?.id == 7)
        }
    }
}
