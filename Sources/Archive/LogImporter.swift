import EventStore
import Foundation

/// Reads an archive (``LogArchive``) into an empty store, streaming, in one transaction
/// (``EventStore/importLog(runs:sequences:_:)``): a damaged, cut or foreign file is refused with
/// what is wrong, and nothing of it is stored. Every event keeps its id, stream, version, type,
/// payload, recording time and position, and the log keeps its order (each run of the archive
/// under a transaction id of its own). Checkpoint tokens of the old store mean nothing in the
/// new one: their transaction ids are beyond its horizon, and a read after one is refused.
public struct LogImporter: Sendable {
    public var store: EventStore
    /// Events per statement.
    public var batchSize = 1000

    public init(store: EventStore) { self.store = store }

    public struct Summary: Sendable, Equatable {
        public var header: LogArchive.Header
        public var events: Int
        public var runs: Int
    }

    /// Imports the archive at `path`. `progress` is told the bytes of the file read so far and
    /// its size.
    public func importArchive(
        from path: String, progress: @Sendable (_ read: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> Summary {
        let reader = try LZ4FrameReader(path: path)
        var lines = LineReader { try reader.next() }
        guard let first = try lines.next(), let header = LogArchive.decodeLine(LogArchive.Header.self, first),
            header.format == LogArchive.format
        else {
            throw LogArchiveError("\(path) is not a Vigil log archive: its first line is not a vigil-log header")
        }
        guard header.formatVersion == LogArchive.formatVersion else {
            throw LogArchiveError(
                "\(path) is a vigil-log archive of format version \(header.formatVersion); "
                    + "this Vigil reads version \(LogArchive.formatVersion)")
        }
        var events = 0
        var runs = 0
        try await store.importLog(runs: header.runs, sequences: header.sequences) { importing in
            var batch = Batch()
            var previous: Int64?
            var trailer: LogArchive.Trailer?
            func flush() async throws {
                let firstLine = events - batch.lines.count + 2
                do {
                    try await importing.store(lines: batch.lines, positions: batch.positions, runs: batch.runs)
                } catch let error as LogImportError {
                    throw LogArchiveError(
                        "lines \(firstLine)–\(firstLine + batch.lines.count - 1) of \(path): \(error)")
                }
                batch = Batch()
                progress(reader.fileBytesRead, reader.fileSize)
            }
            while let line = try lines.next() {
                guard trailer == nil else { throw LogArchiveError("\(path) goes on after its trailer line") }
                guard let position = LogArchive.position(of: line) else {
                    guard let end = LogArchive.decodeLine(LogArchive.Trailer.self, line), end.end == LogArchive.format
                    else {
                        throw LogArchiveError("line \(events + 2) of \(path) is neither an event nor the trailer")
                    }
                    trailer = end
                    continue
                }
                if let previous, position == previous {
                    throw LogArchiveError("line \(events + 2) of \(path) repeats position \(position)")
                }
                if previous.map({ position < $0 }) ?? true {
                    guard runs < importing.runs else {
                        throw LogArchiveError(
                            "\(path) has more runs of ascending positions than its header's \(header.runs)")
                    }
                    runs += 1
                }
                previous = position
                batch.append(line: line, position: position, run: runs - 1)
                events += 1
                if batch.lines.count >= batchSize { try await flush() }
            }
            try await flush()
            guard let trailer else { throw LogArchiveError("\(path) is cut off: it has no trailer line") }
            guard trailer.events == events, header.events == events else {
                throw LogArchiveError(
                    "\(path) holds \(events) events, but its header says \(header.events) and its trailer "
                        + "\(trailer.events)")
            }
        }
        return Summary(header: header, events: events, runs: runs)
    }

    /// The events of one statement.
    struct Batch {
        var lines: [String] = []
        var positions: [Int64] = []
        var runs: [Int] = []

        mutating func append(line: ArraySlice<UInt8>, position: Int64, run: Int) {
            lines.append(String(decoding: line, as: UTF8.self))
            positions.append(position)
            runs.append(run)
        }
    }
}
