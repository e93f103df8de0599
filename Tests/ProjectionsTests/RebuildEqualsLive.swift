import Foundation
import Logging
import PostgresNIO
import Projections
import Testing
import VigilTesting

@testable import EventStore

/// Rebuild equals live, for every table of every read model: the one check behind the read
/// models' correctness under batching, concurrency, restarts and rebuilds.
///
/// It is table-driven from the registry: the read models are ``ReadModels/all`` and each one's
/// tables are whatever its generation schema holds (what `createTables` made, and what the
/// public views show). A read model or table added later is compared without touching this
/// file, and a table the test's history leaves empty fails the check (it would prove nothing).
enum RebuildEqualsLive {
    /// All rows of one table, all columns, each as text, in text order.
    typealias Rows = [String]

    /// One read model's generation: where it stands in the log and what each table holds.
    struct Snapshot {
        var generation: Int32
        var checkpoint: Checkpoint
        var eventsApplied: Int64
        /// By table name.
        var tables: [String: Rows]
        /// Every index's definition, its schema's name left out.
        var indexes: [String]
    }

    /// Every table in `projection`'s schema for `generation`, as whole rows (`t::text` holds
    /// every column, generated ones included).
    static func tables(
        _ projection: any Projection, generation: Int32, _ store: EventStore
    ) async throws -> [String: Rows] {
        let schema = projection.schema(generation: generation)
        let names = try await store.client.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = \(schema) ORDER BY tablename",
            logger: TestDatabase.logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
        var tables: [String: Rows] = [:]
        for table in names {
            tables[table] = try await store.client.query(
                "SELECT t::text FROM \(unescaped: schema).\(unescaped: table) t ORDER BY 1",
                logger: TestDatabase.logger
            ).decode(String.self).reduce(into: Rows()) { $0.append($1) }
        }
        return tables
    }

    /// The definitions of the indexes in `projection`'s schema for `generation`, by name.
    static func indexes(_ projection: any Projection, generation: Int32, _ store: EventStore) async throws -> [String] {
        let schema = projection.schema(generation: generation)
        return try await store.client.query(
            """
            SELECT replace(indexdef, \(schema + "."), '') FROM pg_indexes
            WHERE schemaname = \(schema) ORDER BY indexname
            """,
            logger: TestDatabase.logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
    }

    /// Every read model's live generation, none of them being rebuilt.
    static func snapshot(_ store: EventStore) async throws -> [String: Snapshot] {
        var snapshots: [String: Snapshot] = [:]
        let statuses = try await store.projectionStatuses()
        for projection in ReadModels.all {
            let status = try #require(statuses.first { $0.name == projection.name }, "\(projection.name)")
            #expect(status.rebuild == nil, "\(projection.name) is being rebuilt")
            snapshots[projection.name] = Snapshot(
                generation: status.generation, checkpoint: status.checkpoint, eventsApplied: status.eventsApplied,
                tables: try await tables(projection, generation: status.generation, store),
                indexes: try await indexes(projection, generation: status.generation, store))
        }
        return snapshots
    }

    /// Rebuilds every read model from the log with runners of its own (`options`: another
    /// batch size than the live build's shows batching bugs; `batchSize: 1` and `rebuildBatchSize: 1`
    /// apply the events one by one, the meaning the set-based batches must reproduce), and expects every table
    /// of every rebuilt generation to equal the live one it replaces, row for row, column for
    /// column, and every table to hold rows.
    ///
    /// The caller has stopped its own runners and appends nothing meanwhile (the live
    /// generation must stand still; the checkpoints are compared too).
    static func assertRebuildEqualsLive(
        _ store: EventStore,
        _ notifier: LogNotifier,
        options: ProjectionRunner.Options,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let live = try await snapshot(store)
        for projection in ReadModels.all {
            let tables = live[projection.name]?.tables ?? [:]
            #expect(!tables.isEmpty, "\(projection.name) has no tables", sourceLocation: sourceLocation)
            for (table, rows) in tables where rows.isEmpty {
                Issue.record(
                    "\(projection.name).\(table) is empty: the history must fill every read-model table",
                    sourceLocation: sourceLocation)
            }
        }

        let runners = ReadModels.all.map {
            ProjectionRunner(projection: $0, store: store, notifier: notifier, options: options)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for runner in runners { group.addTask { try await runner.run() } }
            defer { group.cancelAll() }
            for projection in ReadModels.all {
                let expected = (live[projection.name]?.generation ?? 0) + 1
                #expect(try await store.requestRebuild(of: projection) == expected, sourceLocation: sourceLocation)
            }
            let deadline = ContinuousClock.now + .seconds(300)
            var seen = ""
            while ContinuousClock.now < deadline {
                let statuses = try await store.projectionStatuses()
                let done = ReadModels.all.allSatisfy { projection in
                    guard let status = statuses.first(where: { $0.name == projection.name }) else { return false }
                    return status.generation == (live[projection.name]?.generation ?? 0) + 1 && status.rebuild == nil
                }
                if done { break }
                seen = statuses.map {
                    "\($0.name) gen \($0.generation), rebuild \($0.rebuild.map { "\($0.generation) at \($0.checkpoint)" } ?? "-"), error \($0.lastError ?? "-")"
                }.joined(separator: "; ")
                try await Task.sleep(for: .milliseconds(20))
            }
            if ContinuousClock.now >= deadline {
                Issue.record("the rebuilds did not finish within 300 s: \(seen)", sourceLocation: sourceLocation)
            }
            // They read the log through the stretch they share, which lets go once all are done.
            #expect(await store.window.tableReads > 0, "the shared window was not read", sourceLocation: sourceLocation)
            try await waitUntil("the shared window is empty after the rebuilds", timeout: .seconds(10)) {
                await store.window.heldEvents == 0
            }
        }

        let rebuilt = try await snapshot(store)
        for projection in ReadModels.all {
            let name = projection.name
            guard let before = live[name], let after = rebuilt[name] else { continue }
            #expect(after.generation == before.generation + 1, "\(name)", sourceLocation: sourceLocation)
            #expect(
                after.checkpoint == before.checkpoint, "\(name): the log moved meanwhile",
                sourceLocation: sourceLocation)
            #expect(after.eventsApplied == before.eventsApplied, "\(name)", sourceLocation: sourceLocation)
            #expect(
                after.tables.keys.sorted() == before.tables.keys.sorted(), "\(name): tables",
                sourceLocation: sourceLocation)
            // A rebuild builds its secondary indexes after the bulk load: all of them.
            #expect(after.indexes == before.indexes, "\(name): indexes", sourceLocation: sourceLocation)
            #expect(!after.indexes.isEmpty, "\(name): indexes", sourceLocation: sourceLocation)
            for (table, liveRows) in before.tables.sorted(by: { $0.key < $1.key }) {
                let rebuiltRows = after.tables[table] ?? []
                guard rebuiltRows != liveRows else { continue }
                let onlyLive = Set(liveRows).subtracting(rebuiltRows).sorted().prefix(3)
                let onlyRebuilt = Set(rebuiltRows).subtracting(liveRows).sorted().prefix(3)
                Issue.record(
                    """
                    \(name).\(table): rebuilt (\(rebuiltRows.count) rows) differs from live (\(liveRows.count) rows)
                    only live: \(onlyLive.joined(separator: "\n  "))
                    only rebuilt: \(onlyRebuilt.joined(separator: "\n  "))
                    """,
                    sourceLocation: sourceLocation)
            }
        }
    }
}
