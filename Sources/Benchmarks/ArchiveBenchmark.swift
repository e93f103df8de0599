import Archive
import ArgumentParser
import EventStore
import Foundation
import Logging
import PostgresNIO
import Synthetic

/// `vigil bench archive`: `vigil export` and `vigil import` of a synthetic log, each against
/// PostgreSQL's own `COPY` of the same rows in the same run (`COPY (…) TO` a server-side file,
/// and `COPY … FROM` it into a fresh, migrated `events` table with every index and trigger, in
/// one transaction like the import).
struct ArchiveBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract: "Export and import of the log (LZ4 NDJSON archives) against COPY TO/FROM of the same rows."
    )

    @Option(help: "Security events in the history (each with one detection: four log events).")
    var events = 250_000

    @Flag(help: "A small run (20,000 security events).")
    var quick = false

    func run() async throws {
        let logger = Bench.quietLogger()
        let settings = try PostgresSettings.fromEnvironment()
        let events = quick ? 20_000 : self.events
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vigil-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // The server writes the COPY file: it must be able to enter the directory.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory.path)
        defer { try? FileManager.default.removeItem(at: directory) }
        let archive = directory.appendingPathComponent("log.ndjson.lz4").path
        let copyFile = directory.appendingPathComponent("events.copy").path

        try await ScratchDatabase.with(settings: settings, prefix: "vigil_bench_archive", logger: logger) {
            client, _ in
            let store = EventStore(client: client, logger: logger)
            let logEvents = try await PagesBenchmark.appendHistory(events, to: store)
            PagesBenchmark.endProgress("vigil bench archive: \(logEvents) log events")

            let exportStart = ContinuousClock.now
            let exported = try await LogExporter(store: store).export(to: archive)
            let exportTime = exportStart.duration(to: .now).seconds

            let copyOutStart = ContinuousClock.now
            try await client.query(
                """
                COPY (SELECT position, tx_id, event_id, stream, version, type, schema_version, data, metadata,
                             recorded_at FROM events ORDER BY tx_id, position)
                TO \(unescaped: Self.literal(copyFile))
                """,
                logger: logger)
            let copyOutTime = copyOutStart.duration(to: .now).seconds
            let copyBytes = (try? FileManager.default.attributesOfItem(atPath: copyFile)[.size] as? Int) ?? 0

            let (importTime, copyInTime) = try await Self.importBoth(
                archive: archive, copyFile: copyFile, settings: settings, logger: logger)

            print(
                pad("step", 40, left: true) + pad("events/s", 11) + pad("seconds", 9) + pad("MB", 8) + pad("vs COPY", 9)
            )
            func row(_ name: String, _ seconds: Double, _ bytes: Int, _ baseline: Double) {
                print(
                    pad(name, 40, left: true) + pad(String(format: "%.0f", Double(logEvents) / seconds), 11)
                        + pad(String(format: "%.2f", seconds), 9)
                        + pad(String(format: "%.1f", Double(bytes) / 1e6), 8)
                        + pad(String(format: "%.2f", baseline / seconds), 9))
            }
            row("COPY (… ORDER BY tx_id, position) TO", copyOutTime, copyBytes, copyOutTime)
            row("vigil export (LZ4 NDJSON)", exportTime, exported.fileBytes, copyOutTime)
            row("COPY events FROM (one transaction)", copyInTime, copyBytes, copyInTime)
            row("vigil import", importTime, exported.fileBytes, copyInTime)
            print(
                String(
                    format: "archive: %.1f MB of NDJSON in %.1f MB (%.0f%%), %d runs",
                    Double(exported.contentBytes) / 1e6, Double(exported.fileBytes) / 1e6,
                    100 * Double(exported.fileBytes) / Double(max(exported.contentBytes, 1)), exported.header.runs))
        }
    }

    /// Imports the archive into one fresh database and COPYs the rows into another: seconds each.
    static func importBoth(
        archive: String, copyFile: String, settings: PostgresSettings, logger: Logger
    )
        async throws -> (Double, Double)
    {
        let importTime = try await ScratchDatabase.with(
            settings: settings, prefix: "vigil_bench_import", logger: logger
        ) { client, _ in
            let start = ContinuousClock.now
            _ = try await LogImporter(store: EventStore(client: client, logger: logger)).importArchive(from: archive)
            return start.duration(to: .now).seconds
        }
        let copyInTime = try await ScratchDatabase.with(
            settings: settings, prefix: "vigil_bench_copy", logger: logger
        ) { client, _ in
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE events ALTER COLUMN position SET GENERATED BY DEFAULT", logger: logger)
                let start = ContinuousClock.now
                try await connection.inTransaction(logger: logger) { connection in
                    try await connection.query(
                        """
                        COPY events (position, tx_id, event_id, stream, version, type, schema_version, data,
                                     metadata, recorded_at)
                        FROM \(unescaped: literal(copyFile))
                        """,
                        logger: logger)
                }
                return start.duration(to: .now).seconds
            }
        }
        return (importTime, copyInTime)
    }

    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
