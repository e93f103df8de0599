import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// The read models built live (batch by batch, while writers append concurrently) and built
/// again by a rebuild must hold the same rows.
@Suite("Read models")
struct ReadModelRebuildTests {
    static let start = Date(timeIntervalSince1970: 1_795_000_000)
    static let tables = ["cameras", "detections", "security_events", "detection_totals"]

    /// md5 over the rows of a read model's view, in key order, optionally restricted.
    static func checksum(
        _ table: String, where condition: String = "true", columns: String = "t", _ store: EventStore
    )
        async throws -> String
    {
        let key = table.hasSuffix("_totals") ? "t.camera_id" : "t.id"
        let rows = try await store.client.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT coalesce(md5(string_agg((\(columns))::text, '|' ORDER BY \(key))), 'empty'), count(*)
                    FROM \(table) t WHERE \(condition)
                    """), logger: store.logger)
        for try await (sum, count) in rows.decode((String, Int64).self) { return "\(sum)/\(count)" }
        return "none"
    }

    /// Waits until every read model's live generation is `generation` (no rebuild under way)
    /// and has passed `checkpoint`.
    static func waitForReadModels(_ checkpoint: Checkpoint, generation: Int32, _ store: EventStore) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        var seen = ""
        while ContinuousClock.now < deadline {
            let statuses = try await store.projectionStatuses().filter { ReadModels.named($0.name) != nil }
            if statuses.count == ReadModels.all.count,
                statuses.allSatisfy({ $0.generation == generation && $0.rebuild == nil && $0.checkpoint >= checkpoint })
            {
                return
            }
            seen = statuses.map { "\($0.name) gen \($0.generation) at \($0.checkpoint) error \($0.lastError ?? "-")" }
                .joined(separator: "; ")
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("read models did not reach \(checkpoint) in generation \(generation): \(seen)")
    }

    /// Appends `ranges` of the history concurrently, with reviews, and a marker event last;
    /// returns the marker's checkpoint.
    static func appendConcurrently(
        _ history: SyntheticHistory, _ ranges: [Range<Int>], _ store: EventStore
    )
        async throws -> Checkpoint
    {
        let metadata = EventMetadata(actor: "tests")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for range in ranges {
                group.addTask {
                    // Small chunks so the writers interleave in the log.
                    try await store.appendSynthetic(history, events: range, detectionsPerEvent: 2, chunk: 25)
                    for n in range where n % 7 == 0 {
                        let review = SecurityEventReviewed(
                            id: Int64(n + 1), reviewed: n % 14 == 0, notes: n % 3 == 0 ? "note \(n)" : nil)
                        try await store.append(to: review.stream, events: [try NewEvent(review, metadata: metadata)])
                    }
                }
            }
            try await group.waitForAll()
        }
        return try await store.append(to: "marker-1", events: [detection()]).checkpoints[0]
    }

    static let options = ProjectionRunner.Options(
        batchSize: 250, rebuildBatchSize: 97, leaseRetry: .milliseconds(50), errorRetry: .milliseconds(50))

    /// A runner for each read model.
    static func runners(_ store: EventStore, _ notifier: LogNotifier) -> [ProjectionRunner] {
        ReadModels.all.map { ProjectionRunner(projection: $0, store: store, notifier: notifier, options: options) }
    }

    /// The camera of security event number `n` of `history`.
    static func camera(of n: Int, in history: SyntheticHistory) -> String? {
        history.securityEvent(n, id: 1, firstDetectionID: 1).lazy.compactMap { $0 as? SecurityEventOpened }.first?
            .cameraId
    }

    @Test("A rebuild, run while writers append, builds the same rows the live generation built")
    func rebuildEqualsLive() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let runners = Self.runners(store, notifier)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                defer { group.cancelAll() }
                let history = SyntheticHistory(cameraCount: 4, start: Self.start, spacing: 20)

                // Built live, batch by batch, while four writers append concurrently; then a
                // camera is removed (its rows are hidden, not deleted).
                async let keys: Void = Self.appendKeyLifecycle(store)
                _ = try await Self.appendConcurrently(history, [0..<150, 150..<300, 300..<450, 450..<600], store)
                try await keys
                try await Self.appendZonesAndRules(store)
                let removal = CameraRemoved(id: "garage", removedAt: Self.start.addingTimeInterval(99_999))
                try await store.append(
                    to: removal.stream, events: [try NewEvent(removal, metadata: EventMetadata(actor: "tests"))])
                let marker = try await store.append(to: "marker-1", events: [detection()]).checkpoints[0]
                try await Self.waitForReadModels(marker, generation: 1, store)
                var live: [String: String] = [:]
                for table in Self.tables { live[table] = try await Self.checksum(table, store) }
                live["cameras"] = try await Self.checksum(
                    "cameras", columns: "t.id, t.name, t.folder_path, t.status, t.removed_at", store)
                #expect(live["security_events"]?.hasSuffix("/600") == true)
                // Independently of how rows were built: the reviews the writers appended.
                let reviewed = (0..<600).filter { $0 % 14 == 0 }.count
                let noted = (0..<600).filter { $0 % 7 == 0 && $0 % 3 == 0 }.count
                #expect(
                    try await Self.checksum("security_events", where: "t.reviewed", store).hasSuffix("/\(reviewed)"))
                #expect(
                    try await Self.checksum("security_events", where: "t.notes LIKE 'note %'", store)
                        .hasSuffix("/\(noted)"))
                #expect(
                    try await Self.checksum(
                        "security_events", where: "t.risk_score IS NULL OR t.ended_at IS NULL", store
                    )
                    .hasSuffix("/0"))
                // The removed camera's events, counted from the history: hidden, not deleted.
                let garage = (0..<600).filter { Self.camera(of: $0, in: history) == "garage" }.count
                #expect(garage > 0)
                #expect(try await Self.checksum("security_events", where: "t.hidden", store).hasSuffix("/\(garage)"))
                #expect(
                    try await Self.checksum("security_events", where: "t.hidden AND t.camera_id <> 'garage'", store)
                        .hasSuffix("/0"))
                #expect(try await Self.checksum("detections", where: "t.hidden", store).hasSuffix("/\(2 * garage)"))

                // Rebuild all three while more events arrive.
                for projection in ReadModels.all { #expect(try await store.requestRebuild(of: projection) == 2) }
                let last = try await Self.appendConcurrently(history, [600..<700, 700..<800], store)
                try await Self.waitForReadModels(last, generation: 2, store)

                // The rows of the first 600 events, rebuilt, equal the ones built live.
                #expect(
                    try await Self.checksum("security_events", where: "t.id <= 600", store) == live["security_events"])
                #expect(try await Self.checksum("detections", where: "t.id <= 1200", store) == live["detections"])
                #expect(
                    try await Self.checksum(
                        "cameras", columns: "t.id, t.name, t.folder_path, t.status, t.removed_at", store)
                        == live["cameras"])
                #expect(try await Self.checksum("security_events", store).hasSuffix("/800"))

            }
            // And a second rebuild, with nothing arriving, reproduces every row of every table.
            try await RebuildEqualsLive.assertRebuildEqualsLive(store, notifier, options: Self.options)
        }
    }

    @Test("Every table of every read model: built live under concurrent writers, rebuilt event by event, equal")
    func everyTableRebuildEqualsLive() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let runners = Self.runners(store, notifier)
            let history = SyntheticHistory(cameraCount: 4, start: Self.start, spacing: 1800)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                defer { group.cancelAll() }

                // Built live, batch by batch, while writers append concurrently.
                let marker = try await Self.appendEveryKindOfEvent(history, store)
                try await Self.waitForReadModels(marker, generation: 1, store)

                // The history reached what it is about (independently of rebuilds).
                // The garage's events from before its removal are hidden, and so are those the
                // concurrent writers appended while it stood removed, before it was registered
                // again (RemovedCameras); those after that are not.
                let garage = (0..<100).filter { Self.camera(of: $0, in: history) == "garage" }.count
                #expect(garage > 0)
                let hidden = try await Self.garageEventsBeforeItsReturn(store)
                #expect(hidden >= garage)
                #expect(try await Self.checksum("security_events", where: "t.hidden", store).hasSuffix("/\(hidden)"))
                #expect(try await Self.checksum("cameras", where: "t.updated_at IS NOT NULL", store).hasSuffix("/4"))
                #expect(
                    try await Self.checksum("security_events", where: "t.model LIKE 'synthetic-v%'", store)
                        .hasSuffix("/\((0..<100).filter { $0 % 5 == 2 }.count)"))
            }
            // Rebuilt one event at a time (no runs, no grouping): every row of every table as
            // the live, batched build made it.
            let oneByOne = ProjectionRunner.Options(
                batchSize: 1, rebuildBatchSize: 1, leaseRetry: .milliseconds(50), errorRetry: .milliseconds(50))
            try await RebuildEqualsLive.assertRebuildEqualsLive(store, notifier, options: oneByOne)
            // Rebuilt again in pages of 13 that read the log on the server, cut at camera events
            // (barriers) in the middle of pages: the same rows again.
            let cut = ProjectionRunner.Options(
                batchSize: 1, rebuildBatchSize: 13, leaseRetry: .milliseconds(50), errorRetry: .milliseconds(50))
            try await RebuildEqualsLive.assertRebuildEqualsLive(store, notifier, options: cut)
        }
    }
}
