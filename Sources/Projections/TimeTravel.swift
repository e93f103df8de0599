import Domain
import EventStore
import Foundation

/// Reads back in time: a security event, a camera or the system settings as they were at a
/// point of the log (`as_of` on their GET routes).
///
/// Nothing of it is kept in a table: each answer is the fold of the resource's stream up to
/// the point (``EventStore/readStream(_:upTo:pageSize:)``), rendered by the read model's own
/// item SQL, so a read as of now answers exactly what the live read model does.
public struct TimeTravel: Sendable {
    let store: EventStore
    let settings: SystemSettingsReader
    let securityEvents: SecurityEventsReadModel
    let cameras: CamerasReadModel

    public init(
        store: EventStore, settings: SystemSettingsReader, securityEvents: SecurityEventsReadModel,
        cameras: CamerasReadModel
    ) {
        self.store = store
        self.settings = settings
        self.securityEvents = securityEvents
        self.cameras = cameras
    }

    /// A state read back, and what it stands on: the last event of the resource's stream
    /// folded into it (version 0 and no checkpoint: none, the resource had no events yet).
    public struct Folded<Value: Sendable>: Sendable {
        public var value: Value
        public var version: Int64
        public var checkpoint: Checkpoint?
        public var recordedAt: Date?

        init(_ value: Value, events: [RecordedEvent]) {
            self.value = value
            version = events.last?.version ?? 0
            checkpoint = events.last?.checkpoint
            recordedAt = events.last?.recordedAt
        }
    }

    /// The configuration, severity thresholds and rate limits in force at `point`: the server's
    /// defaults with `config-system` folded over them up to there.
    public func settings(at point: LogPoint) async throws -> Folded<SystemSettings> {
        let events = try await store.readStream(SystemSettings.stream, upTo: point)
        return Folded(try settings.defaults.folding(events.map { ($0.type, $0.data) }), events: events)
    }

    /// The camera's item JSON at `point`, nil if it was not registered then (never, or removed).
    /// `last_seen_at` is its latest detection appended since it was (last) registered.
    public func camera(_ id: String, at point: LogPoint) async throws -> Folded<String>? {
        let events = try await store.readStream(Camera.stream(id), upTo: point)
        guard let camera = try Camera.fold(events.map { ($0.type, $0.data) }),
            let registration = events.last(where: { $0.type == CameraRegistered.type })
        else { return nil }
        let lastSeen = try await store.latestTime(
            "detected_at", in: DetectionRecorded.stream(cameraId: id), after: registration.checkpoint, upTo: point)
        guard let item = try await cameras.item(of: camera, lastSeen: lastSeen) else { return nil }
        return Folded(item, events: events)
    }

    /// The security event's item JSON at `point`, its level under the thresholds in force then;
    /// nil if it was not opened yet, or its camera had been removed since, or stood removed
    /// when it was opened (the read model hides those: ``RemovedCameras``).
    public func securityEvent(_ id: Int64, at point: LogPoint) async throws -> Folded<String>? {
        let events = try await store.readStream(SecurityEvents.stream(id), upTo: point)
        guard let event = try SecurityEvent.fold(events.map { ($0.type, $0.data) }),
            let opened = events.first(where: { $0.type == SecurityEventOpened.type })
        else { return nil }
        let camera = try await store.readStream(Camera.stream(event.cameraId), upTo: point)
        if camera.contains(where: { $0.type == CameraRemoved.type && $0.checkpoint > opened.checkpoint }) { return nil }
        let standing = camera.last {
            $0.checkpoint < opened.checkpoint && [CameraRemoved.type, CameraRegistered.type].contains($0.type)
        }
        if standing?.type == CameraRemoved.type { return nil }
        let thresholds = try await settings(at: point).value.thresholds
        guard let item = try await securityEvents.item(of: event, thresholds: thresholds) else { return nil }
        return Folded(item, events: events)
    }
}
