import Domain
import EventStore
import Foundation

/// Writes the log, or the part of it recorded in a time range, to an archive file
/// (``LogArchive``), streaming: memory stays the same whatever the log's size. What it reads is
/// ``EventStore/exportLog(from:to:pageSize:begin:page:)``: the log up to the store's head when
/// the export begins, one consistent snapshot even while writers go on.
public struct LogExporter: Sendable {
    public var store: EventStore
    /// Events recorded at or after this time (nil: from the start).
    public var from: Date?
    /// Events recorded before this time (nil: to the head).
    public var to: Date?

    public init(store: EventStore, from: Date? = nil, to: Date? = nil) {
        self.store = store
        self.from = from
        self.to = to
    }

    public struct Summary: Sendable, Equatable {
        public var header: LogArchive.Header
        public var fileBytes: Int
        public var contentBytes: Int
    }

    /// Writes the archive to `path` (replacing a file there only once the new one is whole).
    /// `progress` is told the events written so far and the total.
    public func export(
        to path: String, progress: @Sendable (_ written: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> Summary {
        let writer = try LZ4FrameWriter(path: path)
        var written = 0
        // The header as written: the summary returns this one, not a second with another time.
        var header: LogArchive.Header?
        let snapshot = try await store.exportLog(from: from, to: to) { snapshot in
            let first = self.header(snapshot)
            header = first
            try writer.write(try LogArchive.encodeLine(first))
        } page: { lines in
            try writer.write(lines: lines)
            written += lines.count
            progress(written, header?.events ?? written)
        }
        try writer.write(try LogArchive.encodeLine(LogArchive.Trailer(end: LogArchive.format, events: written)))
        try writer.finish()
        return Summary(
            header: header ?? self.header(snapshot), fileBytes: writer.fileBytes, contentBytes: writer.contentBytes)
    }

    func header(_ snapshot: LogExportSnapshot) -> LogArchive.Header {
        LogArchive.Header(
            format: LogArchive.format, formatVersion: LogArchive.formatVersion,
            exportedAt: Timestamp.format(Date()), through: snapshot.through.token,
            from: from.map { Timestamp.format($0) }, to: to.map { Timestamp.format($0) },
            events: snapshot.events, runs: snapshot.runs, sequences: snapshot.sequences)
    }
}
