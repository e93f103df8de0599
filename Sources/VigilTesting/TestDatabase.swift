import EventStore
import Foundation
import Logging
import PostgresNIO
import Synthetic

/// The PostgreSQL started by `tools/test` (its settings come in as `VIGIL_PG_*`).
/// Fixtures for the test targets: fresh databases on the PostgreSQL that `tools/test` starts.
public enum TestDatabase {
    public static let logger: Logger = {
        var logger = Logger(label: "vigil.tests")
        logger.logLevel = .error
        return logger
    }()

    public static func settings() throws -> PostgresSettings {
        guard ProcessInfo.processInfo.environment["VIGIL_PG_PORT"] != nil else {
            throw TestSetupError("VIGIL_PG_PORT is not set: run the tests through tools/test, which starts PostgreSQL")
        }
        var settings = try PostgresSettings.fromEnvironment()
        settings.maximumConnections = 40
        return settings
    }

    /// A fresh, migrated database with a running client, dropped afterwards.
    public static func withStore<Value: Sendable>(
        _ body: @Sendable (EventStore) async throws -> Value
    ) async throws -> Value {
        try await ScratchDatabase.with(settings: settings(), prefix: "vigil_test", logger: logger) { client, _ in
            try await body(EventStore(client: client, logger: logger))
        }
    }

    /// Like ``withStore(_:)``, with a running ``LogNotifier`` for tails.
    public static func withStoreAndNotifier<Value: Sendable>(
        _ body: @Sendable (EventStore, LogNotifier) async throws -> Value
    ) async throws -> Value {
        try await withStore { store in
            let notifier = LogNotifier(client: store.client, logger: logger)
            return try await withThrowingTaskGroup(of: Value?.self) { group in
                group.addTask {
                    try await notifier.run()
                    return nil
                }
                defer { group.cancelAll() }
                return try await body(store, notifier)
            }
        }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A ~250 byte event shaped like the detections Vigil records (type `TestDetection`, so the read
/// models, which need a full `DetectionRecorded`, leave it alone).
public func detection(camera: String = "front_door", sequence: Int = 0, id: UUID = UUID()) -> NewEvent {
    NewEvent(
        id: id,
        type: "TestDetection",
        data: """
            {"camera_id":"\(camera)","object_type":"person","confidence":0.91,"detected_at":"2026-11-23T12:00:00Z",\
            "bbox_x":120,"bbox_y":80,"bbox_width":64,"bbox_height":128,"file_path":"/cameras/\(camera)/\(sequence).jpg",\
            "media_type":"image","sequence":\(sequence)}
            """,
        metadata: #"{"actor":"tests","request_id":"\#(UUID().uuidString)"}"#
    )
}

extension EventStore {
    /// Inserts an event row as if written by transaction `transaction` (a small number: below
    /// every real one), as a log that has run long enough to hold transaction ids of several
    /// lengths (as text, "96" sorts after "220").
    public func insertEventRow(
        stream: String, transaction: UInt64, type: String = "TestDetection"
    ) async throws
        -> Checkpoint
    {
        let rows = try await client.guardedQuery(
            """
            INSERT INTO events (tx_id, event_id, stream, version, type, data)
            VALUES (\(String(transaction))::text::xid8, gen_random_uuid(), \(stream), 1, \(type), '{}')
            RETURNING position
            """,
            logger: logger)
        for try await position in rows.decode(Int64.self) {
            return Checkpoint(transactionID: transaction, position: position)
        }
        throw TestSetupError("the event row was not inserted")
    }

    /// A read that also waits for committed events held beyond the horizon.
    ///
    /// The horizon is cluster-wide: a transaction open in *another* test's database holds
    /// back reads here too, so a test that reads its own writes waits until they are readable.
    /// It throws when events are still pending after `patience`: a page returned with events
    /// behind the horizon would let a "wrote nothing" check pass with the event still unseen.
    public func readSettled(
        after checkpoint: Checkpoint, filter: LogFilter = .all, limit: Int = 1000,
        patience: Duration = .seconds(60)
    ) async throws
        -> LogPage
    {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        while true {
            let page = try await read(after: checkpoint, filter: filter, limit: limit)
            if page.isFull || !page.pendingBeyondHorizon { return page }
            guard clock.now < deadline else {
                throw TestSetupError("events are still pending beyond the read horizon after \(patience)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// How many events the log holds besides the records of refused commands
    /// (`CommandRejected`): what a refused request must not change.
    public func changeCount() async throws -> Int {
        let rows = try await client.guardedQuery(
            "SELECT count(*) FROM events WHERE type <> 'CommandRejected'", logger: logger)
        return Int(try await rows.decode(Int64.self).first { _ in true } ?? -1)
    }

    /// Everything committed so far, following `next` until the log is drained.
    public func readAll(filter: LogFilter = .all, from start: Checkpoint = .start) async throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        var checkpoint = start
        while true {
            let page = try await readSettled(after: checkpoint, filter: filter, limit: 500)
            events += page.events
            checkpoint = page.next
            if !page.isFull { return events }
        }
    }
}
