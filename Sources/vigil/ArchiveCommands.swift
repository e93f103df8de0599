import Archive
import ArgumentParser
import Domain
import EventStore
import Foundation
import Synchronization

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the event log to an LZ4-compressed NDJSON archive (*.ndjson.lz4).",
        discussion: """
            The archive holds the log up to its head when the export begins, in log order, read in \
            one snapshot (writers may go on meanwhile), with a header and a trailer line; the LZ4 frame \
            checksums every block and the whole content. Memory stays the same whatever the log's size. \
            The file gets its name only once it is whole. `vigil import FILE` reads it into a new \
            database. --from/--to (ISO 8601 times or days, UTC) export only the events recorded in \
            [from, to): an excerpt, whose streams may start after version 1.
            """
    )

    @Option(name: .long, help: "The archive to write (e.g. vigil-2026-11-29.ndjson.lz4).")
    var out: String

    @Option(name: .long, help: "Only events recorded at or after this time.")
    var from: String?

    @Option(name: .long, help: "Only events recorded before this time.")
    var to: String?

    func run() async throws {
        let logger = Vigil.logger
        let range = (try parse(from, "--from"), try parse(to, "--to"))
        if let start = range.0, let end = range.1, start >= end {
            // [from, to) would be empty: an archive of nothing, which no one asks for on purpose.
            throw fail("--from \(from ?? "") must be before --to \(to ?? "")", code: 2)
        }
        let settings = try PostgresSettings.fromEnvironment()
        try await requireMigrated(settings, logger: logger)
        let started = ContinuousClock.now
        let progress = ProgressLine()
        let summary: LogExporter.Summary
        do {
            summary = try await settings.withRunningClient(logger: logger) { client in
                let exporter = LogExporter(
                    store: EventStore(client: client, logger: logger), from: range.0, to: range.1)
                return try await exporter.export(to: out) { written, total in
                    progress.show(total == 0 ? 1 : Double(written) / Double(total), "\(written) of \(total) events")
                }
            }
        } catch let error as LZ4FrameError {
            progress.end("")
            throw fail("export failed, no archive was written: \(error)")
        }
        progress.end("done in \(ProgressLine.seconds(since: started))")
        let ratio = summary.contentBytes == 0 ? 0 : Double(summary.fileBytes) / Double(summary.contentBytes)
        print(
            "exported \(summary.header.events) events (\(summary.header.runs) runs) through checkpoint "
                + "\(summary.header.through) to \(out): \(ProgressLine.megabytes(summary.contentBytes)) of NDJSON in "
                + "\(ProgressLine.megabytes(summary.fileBytes)) (" + String(format: "%.0f%%", ratio * 100) + ")")
    }

    private func parse(_ text: String?, _ option: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw fail("\(option) \(text): expected an ISO 8601 time (2026-11-29T08:00:00Z) or day (2026-11-29)")
        }
        return date
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read an archive written by `vigil export` into an empty store.",
        discussion: """
            Applies the store's migrations first (as `vigil migrate`), then reads the archive in one \
            transaction: a damaged, cut or foreign file is refused with what is wrong, and nothing of \
            it is stored. The store must hold no events. Every event keeps its id, stream, version, \
            position, payload and recording time, and the log its order (under the new cluster's \
            transaction ids: checkpoint tokens of the old store are not valid here). The read models \
            build from the imported log when `vigil serve` starts, or with \
            `vigil projections rebuild --all --wait`.
            """
    )

    @Argument(help: "The archive (*.ndjson.lz4).")
    var file: String

    func run() async throws {
        let logger = Vigil.logger
        let settings = try PostgresSettings.fromEnvironment()
        let started = ContinuousClock.now
        let progress = ProgressLine()
        let summary: LogImporter.Summary
        do {
            summary = try await settings.withRunningClient(logger: logger) { client in
                _ = try await Migrator.store().migrate(client: client, logger: logger)
                return try await LogImporter(store: EventStore(client: client, logger: logger)).importArchive(
                    from: file
                ) { read, total in
                    progress.show(
                        total == 0 ? 1 : Double(read) / Double(total),
                        "\(ProgressLine.megabytes(read)) of \(ProgressLine.megabytes(total))")
                }
            }
        } catch let error as LogArchiveError {
            progress.end("")
            throw fail("import refused, nothing was stored: \(error)")
        } catch let error as LZ4FrameError {
            progress.end("")
            throw fail("import refused, nothing was stored: \(error)")
        } catch let error as LogImportError {
            progress.end("")
            throw fail("import refused, nothing was stored: \(error)")
        }
        progress.end("done in \(ProgressLine.seconds(since: started))")
        print(
            "imported \(summary.events) events (\(summary.runs) runs) into \(settings.database); the read models "
                + "build from them when `vigil serve` starts")
    }
}

/// A progress bar redrawn in place on standard output, at most every 200 ms.
final class ProgressLine: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    func show(_ fraction: Double, _ note: String) {
        let now = ContinuousClock.now
        let due = last.withLock { last in
            guard last.map({ $0.duration(to: now) >= .milliseconds(200) }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        let line = "\r\(Self.bar(fraction)) " + String(format: "%5.1f%%  ", fraction * 100) + note + "   "
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    func end(_ note: String) {
        guard last.withLock({ $0 != nil }) else { return }
        FileHandle.standardOutput.write(
            Data(("\r\(Self.bar(1))  \(note)" + String(repeating: " ", count: 30) + "\n").utf8))
    }

    static func bar(_ progress: Double) -> String {
        let width = 30
        let filled = Int((min(max(progress, 0), 1) * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = start.duration(to: .now)
        return String(
            format: "%.1f s", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    static func megabytes(_ bytes: Int) -> String {
        String(format: "%.1f MB", Double(bytes) / 1_000_000)
    }
}
