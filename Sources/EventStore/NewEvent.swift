import Domain
import Foundation

/// An event to be appended: its identity, type and JSON payloads.
public struct NewEvent: Sendable, Hashable {
    /// Unique id of the event. Appending an id that is already stored is idempotent.
    public var id: UUID
    public var type: String
    public var schemaVersion: Int32
    /// The payload, a JSON object as text.
    public var data: String
    /// Actor, request id, correlation and causation ids…, a JSON object as text.
    public var metadata: String
    /// The `request_digest` of `metadata` (``EventMetadata/requestDigest``), for the log
    /// writer: an event id that is already stored is a retry only when the digests agree.
    public var requestDigest: String?

    public init(
        id: UUID = .random(), type: String, schemaVersion: Int32 = 1, data: String, metadata: String = "{}",
        requestDigest: String? = nil
    ) {
        self.id = id
        self.type = type
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
        self.requestDigest = requestDigest
    }

    /// Encodes `payload` (snake_case keys, ISO 8601 dates) as the event's data.
    public init(
        id: UUID = .random(),
        type: String,
        schemaVersion: Int32 = 1,
        payload: some Encodable,
        metadata: [String: String] = [:]
    ) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let data = String(decoding: try encoder.encode(payload), as: UTF8.self)
        let meta = String(decoding: try encoder.encode(metadata), as: UTF8.self)
        self.init(id: id, type: type, schemaVersion: schemaVersion, data: data, metadata: meta)
    }
}

/// What a writer expects the stream's version to be before its append.
///
/// Versions count a stream's events: the first event of a stream has version 1 and a stream
/// that has no events is at version 0.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must have no events.
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream must be exactly at this version.
    case exact(Int64)

    func accepts(_ current: Int64) -> Bool {
        switch self {
        case .any: true
        case .noStream: current == 0
        case .streamExists: current > 0
        case .exact(let version): current == version
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .streamExists: "stream exists"
        case .exact(let version): "\(version)"
        }
    }
}

/// Events to append to one stream, atomically.
public struct AppendRequest: Sendable {
    public var stream: String
    public var events: [NewEvent]
    public var expected: ExpectedVersion

    public init(stream: String, events: [NewEvent], expected: ExpectedVersion = .any) {
        self.stream = stream
        self.events = events
        self.expected = expected
    }
}

/// The outcome of a successful append.
public struct AppendResult: Sendable, Hashable {
    public var stream: String
    /// The stream's version after the append (the version of its last event).
    public var version: Int64
    /// Where each appended event sits in the global log, in the order given.
    public var checkpoints: [Checkpoint]
    /// True when every event was already stored: nothing was written and this is the original result.
    public var wasAlreadyStored: Bool
}

/// Why an append was refused. Nothing of a refused request is written.
public enum AppendError: Error, Hashable, CustomStringConvertible {
    /// The stream is not at the expected version.
    case wrongExpectedVersion(stream: String, expected: ExpectedVersion, current: Int64)
    /// An event id is already stored, but not as part of this same append (another stream,
    /// another position, or only some of the request's events are stored).
    case duplicateEventID(UUID)
    /// The request itself is malformed (empty stream name or type, a repeated event id…).
    case invalidRequest(String)
    /// The append was retried many times because younger transactions kept writing the
    /// stream first (see ``EventStore/transaction(_:)``).
    case tooMuchContention(stream: String)
    /// Retention archived the stream (``EventStore/archiveExpired(_:)``): it takes no more events.
    case streamArchived(stream: String)

    /// Refused because of what else is in the log (a client may retry or reconsider), not
    /// because the request was malformed.
    public var isConflict: Bool {
        if case .invalidRequest = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .wrongExpectedVersion(let stream, let expected, let current):
            "stream '\(stream)' is at version \(current), expected \(expected)"
        case .duplicateEventID(let id):
            "event \(id) is already stored as part of another append"
        case .invalidRequest(let reason):
            reason
        case .tooMuchContention(let stream):
            "stream '\(stream)' is contended: the append was retried too often"
        case .streamArchived(let stream):
            "stream '\(stream)' was archived by retention and takes no more events"
        }
    }
}
