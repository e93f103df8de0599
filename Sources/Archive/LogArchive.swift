import Foundation

/// The file format of an exported log (`*.ndjson.lz4`): one LZ4 frame (``LZ4FrameWriter``)
/// holding NDJSON, one JSON object per line:
///
/// 1. the header: `{"format":"vigil-log","format_version":1,…}` with what was exported (the
///    checkpoint it goes up to, the time range, how many events and runs) and the values of the
///    store's id sequences, so an import hands out no id twice;
/// 2. one line per event, in log order:
///    `{"position":…,"event_id":…,"stream":…,"version":…,"type":…,"schema_version":…,"recorded_at":…,"data":{…},"metadata":{…}}`;
///    `position` always comes first, `recorded_at` has the API's microseconds, `data` and
///    `metadata` are the stored JSON as PostgreSQL renders it (numbers exactly as stored);
/// 3. the trailer: `{"end":"vigil-log","events":N}`. A file without it is not whole.
///
/// A **run** is a stretch of events, in log order, whose positions ascend. The log's order is
/// (transaction, position), and a transaction that took a lower position can commit after
/// one with a higher one, so positions alone do not give the order. An import keeps every
/// position and gives each run its own transaction id, ascending, which keeps the order too.
public enum LogArchive {
    public static let format = "vigil-log"
    public static let formatVersion = 1

    /// The header line's content.
    public struct Header: Codable, Sendable, Equatable {
        public var format: String
        public var formatVersion: Int
        public var exportedAt: String
        /// The checkpoint token of the newest event the export could read (the store's head
        /// when it began): the file holds the log up to there.
        public var through: String
        /// The time range of `recorded_at` the export took (nil: unbounded).
        public var from: String?
        public var to: String?
        public var events: Int
        public var runs: Int
        /// The store's id sequences (``IDSequence``) when the export began, by name.
        public var sequences: [String: Int64]
        /// A retention segment's cutoff (nil in an export): it holds the security events that
        /// started before it, with their detections and alerts, and no other event.
        public var cutoff: String?

        enum CodingKeys: String, CodingKey {
            case format, formatVersion = "format_version", exportedAt = "exported_at", through, from, to, events,
                runs, sequences, cutoff
        }
    }

    /// The trailer line's content.
    public struct Trailer: Codable, Sendable, Equatable {
        public var end: String
        public var events: Int
    }

    /// The prefix of every event line, followed by the position's digits and a comma.
    static let positionPrefix = Array(#"{"position":"#.utf8)

    /// The position at the start of an event line, or nil when the line does not start as one.
    static func position(of line: ArraySlice<UInt8>) -> Int64? {
        guard line.starts(with: positionPrefix) else { return nil }
        var value: Int64 = 0
        var index = line.startIndex + positionPrefix.count
        var digits = 0
        while index < line.endIndex, line[index] >= UInt8(ascii: "0"), line[index] <= UInt8(ascii: "9") {
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = times + Int64(line[index] - UInt8(ascii: "0"))
            index += 1
            digits += 1
        }
        guard digits > 0, index < line.endIndex, line[index] == UInt8(ascii: ",") else { return nil }
        return value
    }

    static func encodeLine(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value)) + [UInt8(ascii: "\n")]
    }

    static func decodeLine<Value: Decodable>(_ type: Value.Type, _ line: ArraySlice<UInt8>) -> Value? {
        try? JSONDecoder().decode(type, from: Data(line))
    }
}

/// Why an archive was refused or could not be written.
public struct LogArchiveError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
