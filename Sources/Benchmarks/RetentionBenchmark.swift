import Archive
import ArgumentParser
import Domain
import EventStore
import Foundation
import PostgresNIO
import Synthetic

/// `vigil bench retention`: a retention run (`POST /api/system/cleanup`'s work: plan, archive
/// segment, delete) taking the older half of a synthetic log, against PostgreSQL doing the
/// least of it on the same rows in the same run: `COPY (the same export lines) TO` a file and
/// `DELETE` them, in one transaction (rolled back, so the run finds them).
struct RetentionBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "A retention run (plan, LZ4 segment, delete) against COPY TO + DELETE of the same rows."
    )

    @OptionGroup var history: HistorySize

    func run() async throws {
        let logger = Bench.quietLogger()
        let settings = try PostgresSettings.fromEnvironment()
        let events = history.securityEvents
        let directory = try Bench.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench_retention", logger: logger) {
            client, _ in
            let store = EventStore(client: client, logger: logger)
            let logEvents = try await PagesBenchmark.appendHistory(events, to: store)
            PagesBenchmark.endProgress("vigil bench retention: \(logEvents) log events")
            try await client.query("VACUUM ANALYZE events", logger: logger)
            // The synthetic history starts at 1,700,000,000 with a security event every 30 s:
            // the cutoff halves it.
            let cutoff = Date(timeIntervalSince1970: 1_700_000_000 + Double(events / 2) * 30)

            let planStart = ContinuousClock.now
            let plan = try await store.planRetention(cutoff: cutoff)
            let planTime = planStart.duration(to: .now).seconds

            let baselineTime = try await Self.copyAndDelete(
                plan.positions, to: directory.appendingPathComponent("baseline.copy").path, on: client)

            let runStart = ContinuousClock.now
            let run = try await RetentionArchive(
                store: store, directory: directory.appendingPathComponent("archive").path
            )
            .run(cutoff: cutoff, retentionDays: 30, metadata: EventMetadata(actor: SystemActor.bench))
            let runTime = runStart.duration(to: .now).seconds
            let archived = run.plan.logEvents

            print(pad("step", 46, left: true) + pad("events/s", 11) + pad("seconds", 9) + pad("vs baseline", 12))
            func row(_ name: String, _ seconds: Double, _ baseline: Double?) {
                print(
                    pad(name, 46, left: true) + pad(String(format: "%.0f", Double(archived) / seconds), 11)
                        + pad(String(format: "%.2f", seconds), 9)
                        + pad(baseline.map { String(format: "%.2f", $0 / seconds) } ?? "", 12))
            }
            row("COPY (export lines) TO + DELETE (baseline)", baselineTime, baselineTime)
            row("plan (a dry run)", planTime, nil)
            row("retention run (plan, segment, delete)", runTime, baselineTime)
            print(
                "retention: \(archived) of \(logEvents) log events archived (\(run.plan.securityEvents) security "
                    + "events, \(run.plan.detections) detections) into "
                    + String(format: "%.1f MB", Double(run.segment?.fileBytes ?? 0) / 1e6))
        }
    }

    /// COPY of the planned rows' export lines to a server-side file and their DELETE, in one
    /// transaction that is rolled back: seconds.
    static func copyAndDelete(
        _ positions: [Int64], to file: String, on client: PostgresClient
    ) async throws
        -> Double
    {
        let logger = Bench.quietLogger()
        return try await client.withConnection { connection in
            let start = ContinuousClock.now
            try await connection.query("BEGIN", logger: logger)
            do {
                // COPY takes no parameters: the positions go to a temporary table first.
                try await connection.query(
                    """
                    CREATE TEMP TABLE bench_positions ON COMMIT DROP AS
                    SELECT unnest(\(positions)::int8[]) AS position
                    """, logger: logger)
                try await connection.query(
                    """
                    COPY (SELECT \(unescaped: EventStore.exportLineSQL) FROM events e
                          JOIN bench_positions p ON p.position = e.position ORDER BY e.tx_id, e.position)
                    TO \(unescaped: ArchiveBenchmark.literal(file))
                    """, logger: logger)
                try await connection.query("SET LOCAL vigil.retention = 'on'", logger: logger)
                try await connection.query(
                    "DELETE FROM events WHERE position = ANY(\(positions)::int8[])", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            let seconds = start.duration(to: .now).seconds
            try await connection.query("ROLLBACK", logger: logger)
            return seconds
        }
    }
}
