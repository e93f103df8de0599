import Crypto
import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO

/// Retention's side of the archive folder: each run that takes events writes them to a segment
/// (`retention-<time>-<first>-<last>.ndjson.lz4`, the export format with the cutoff in its
/// header, so `vigil import` reads it), synced before the events leave the table
/// (``EventStore/archiveExpired(cutoff:pageSize:begin:page:seal:record:)``), and rewrites
/// `manifest.json` (every segment with its counts and SHA-256) after.
public struct RetentionArchive: Sendable {
    public var store: EventStore
    /// The archive folder (created when missing).
    public var directory: String

    public static let manifestName = "manifest.json"
    static let segmentPrefix = "retention-"
    static let segmentSuffix = ".ndjson.lz4"

    public init(store: EventStore, directory: String) {
        self.store = store
        self.directory = directory
    }

    /// One run's outcome.
    public struct Run: Sendable, Equatable {
        public var plan: RetentionPlan
        public var segment: ArchivedSegment?
        /// Segment files of earlier runs that never committed, removed before this one.
        public var orphansRemoved: [String]
    }

    /// Archives and removes what retention takes for `cutoff`, appending `RetentionApplied`
    /// with `metadata` (the actor) in the same transaction.
    public func run(cutoff: Date, retentionDays: Int, metadata: EventMetadata) async throws -> Run {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var orphans: [String] = []
        let name = Self.segmentName(at: Date())
        let path = (directory as NSString).appendingPathComponent(name)
        var writer: LZ4FrameWriter?
        do {
            // Under the lock: a file another instance's run is writing right now is not an orphan.
            let (plan, segment) = try await store.archiveExpired(cutoff: cutoff) {
                orphans = try await removeOrphans()
            } begin: { plan in
                let opened = try LZ4FrameWriter(path: path)
                writer = opened
                try opened.write(try LogArchive.encodeLine(Self.header(plan)))
            } page: { lines in
                try writer?.write(lines: lines)
            } seal: { plan in
                guard let writer else { throw LogArchiveError("retention sealed a segment it never opened") }
                try writer.write(
                    try LogArchive.encodeLine(LogArchive.Trailer(end: LogArchive.format, events: plan.logEvents)))
                try writer.finish()
                try Self.syncDirectory(directory)
                return ArchivedSegment(name: name, fileBytes: writer.fileBytes, sha256: try Self.sha256(of: path))
            } record: { plan, segment in
                let event = RetentionApplied(
                    cutoff: cutoff, retentionDays: retentionDays, segment: segment?.name, sha256: segment?.sha256,
                    logEvents: plan.logEvents, securityEvents: plan.securityEvents, detections: plan.detections,
                    alerts: plan.alerts, operationalLogs: plan.operationalLogs)
                return AppendRequest(
                    stream: event.stream, events: [try NewEvent(event, metadata: metadata)])
            }
            if segment != nil {
                // Committed: the manifest is a convenience (the database records the segments);
                // failing to write it fails nothing.
                do {
                    try await writeManifest()
                } catch {
                    store.logger.warning(
                        "the archive manifest could not be written",
                        metadata: ["directory": "\(directory)", "error": "\(error)"])
                }
            }
            return Run(plan: plan, segment: segment, orphansRemoved: orphans)
        } catch {
            // The events are still in the table unless the commit went through and only its
            // answer was lost: the segment goes only when the store is seen not to record it
            // (else the next run decides, under the lock).
            writer = nil
            try? FileManager.default.removeItem(atPath: path + ".partial")
            if let recorded = try? await store.archivedSegments(), !recorded.contains(where: { $0.name == name }) {
                try? FileManager.default.removeItem(atPath: path)
            }
            throw error
        }
    }

    /// Removes the segment files (whole or partial) the store has no record of: what runs
    /// that failed before their commit left. Returns their names.
    ///
    /// A whole segment the log names (`RetentionApplied`) stays even when this database has no
    /// row for it: a store moved by export and import brings its log, not its
    /// `log_archive_segments`, and such a file may be the only copy of the events it holds.
    public func removeOrphans() async throws -> [String] {
        let kept = Set(try await store.archivedSegments().map(\.name))
            .union(try await segmentsNamedInLog())
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed: [String] = []
        for file in files.sorted() where file.hasPrefix(Self.segmentPrefix) {
            let name = file.hasSuffix(".partial") ? String(file.dropLast(".partial".count)) : file
            guard name.hasSuffix(Self.segmentSuffix), !kept.contains(file) else { continue }
            try FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(file))
            removed.append(file)
        }
        return removed
    }

    /// The segment names the log's `RetentionApplied` events give: every segment of this store's
    /// history, those of a store it was moved from too.
    func segmentsNamedInLog() async throws -> Set<String> {
        let rows = try await store.client.query(
            """
            SELECT DISTINCT data->>'segment' FROM events
            WHERE type = \(RetentionApplied.type) AND data->>'segment' IS NOT NULL
            """, logger: store.logger)
        var names = Set<String>()
        for try await name in rows.decode(String.self) { names.insert(name) }
        return names
    }

    /// `manifest.json`: every recorded segment, oldest first, written whole (a temporary file
    /// renamed over the old one).
    public func writeManifest() async throws {
        let segments = try await store.archivedSegments()
        let entries: [[String: JSONValue]] = segments.map { segment in
            [
                "name": .string(segment.name), "created_at": .string(Timestamp.format(segment.createdAt)),
                "cutoff": .string(Timestamp.format(segment.cutoff)),
                "log_events": .number(Double(segment.logEvents)),
                "first_position": .number(Double(segment.firstPosition)),
                "last_position": .number(Double(segment.lastPosition)),
                "file_bytes": .number(Double(segment.fileBytes)), "sha256": .string(segment.sha256),
            ]
        }
        let manifest: JSONValue = .object([
            "format": .string(LogArchive.format), "segments": .array(entries.map { .object($0) }),
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = (directory as NSString).appendingPathComponent(Self.manifestName)
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func header(_ plan: RetentionPlan) -> LogArchive.Header {
        LogArchive.Header(
            format: LogArchive.format, formatVersion: LogArchive.formatVersion,
            exportedAt: Timestamp.format(Date()), through: plan.bound.token, from: nil, to: nil,
            events: plan.logEvents, runs: plan.runs, sequences: plan.sequences, cutoff: Timestamp.format(plan.cutoff))
    }

    static func segmentName(at date: Date) -> String {
        let format = Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day().time(includingFractionalSeconds: true)
        let stamp = date.formatted(format).filter { $0.isNumber }
        return "\(segmentPrefix)\(stamp)-\(UUID().uuidString.prefix(8).lowercased())\(segmentSuffix)"
    }

    /// The SHA-256 of a file, read a megabyte at a time, as lowercase hex.
    public static func sha256(of path: String) throws -> String {
        let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? file.close() }
        var hash = SHA256()
        while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return lowercaseHex(hash.finalize())
    }

    /// Syncs a folder, so a file just renamed into it keeps its name after a crash.
    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw LogArchiveError("cannot open \(path) to sync it") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw LogArchiveError("cannot sync \(path)") }
    }
}
