import Foundation

/// An event as stored in the log.
public struct RecordedEvent: Sendable, Hashable {
    public var checkpoint: Checkpoint
    public var id: UUID
    public var stream: String
    public var version: Int64
    public var type: String
    public var schemaVersion: Int32
    /// The payload, a JSON object as text, exactly as PostgreSQL renders the stored `jsonb`.
    public var data: String
    public var metadata: String
    public var recordedAt: Date

    public var position: Int64 { checkpoint.position }

    public init(
        checkpoint: Checkpoint, id: UUID, stream: String, version: Int64, type: String, schemaVersion: Int32,
        data: String, metadata: String, recordedAt: Date
    ) {
        self.checkpoint = checkpoint
        self.id = id
        self.stream = stream
        self.version = version
        self.type = type
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
        self.recordedAt = recordedAt
    }
}

/// Which events of the log a reader wants.
public struct LogFilter: Sendable, Hashable {
    /// Only these event types (nil: all).
    public var types: [String]?
    /// Only streams whose name starts with this (nil: all), byte for byte (UTF-8), as the table's
    /// reads compare it (`starts_with`): not by Swift's characters, which would take `é` for a
    /// prefix of `é` in another Unicode form and not take `e` for one of `e` + U+0301.
    public var streamPrefix: String?

    public init(types: [String]? = nil, streamPrefix: String? = nil) {
        self.types = types
        self.streamPrefix = streamPrefix
    }

    public static let all = LogFilter()

    /// Whether the filter takes `event`.
    public func takes(_ event: RecordedEvent) -> Bool {
        if let types, !types.contains(event.type) { return false }
        if let streamPrefix, !event.stream.utf8.starts(with: streamPrefix.utf8) { return false }
        return true
    }
}

/// One read of the global log.
public struct LogPage: Sendable {
    /// Matching events after the requested checkpoint, in log order.
    public var events: [RecordedEvent]
    /// Where the next read starts. When the page is not full this is the newest readable
    /// checkpoint of the whole log (filtered-out events are skipped for good), otherwise
    /// the checkpoint of the page's last event (or, for a page of a shared stretch that ended
    /// first, that stretch's end: ``EventStore/readShared(as:after:filter:limit:on:)``).
    public var next: Checkpoint
    /// The page was full: more matching events may be readable right away.
    public var isFull: Bool
    /// Committed events exist beyond the readable horizon: an older transaction is still
    /// running, and they become readable when it ends (a tailer polls instead of waiting
    /// for a notification, since a rollback elsewhere notifies nobody).
    public var pendingBeyondHorizon: Bool

    public init(events: [RecordedEvent], next: Checkpoint, isFull: Bool, pendingBeyondHorizon: Bool) {
        self.events = events
        self.next = next
        self.isFull = isFull
        self.pendingBeyondHorizon = pendingBeyondHorizon
    }
}

/// One stream's events from a version on.
public struct StreamPage: Sendable {
    public var stream: String
    /// The stream's current version (0: the stream has no events).
    public var version: Int64
    public var events: [RecordedEvent]
}
