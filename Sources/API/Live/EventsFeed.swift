import Domain
import EventStore
import Foundation
import Logging
import NIOCore
import Projections
import ServiceLifecycle
import Synchronization

/// The channels of `/ws/events` (the seeds' registry). `system` carries `/ws/system`'s status
/// (``SystemStatusFeed``).
enum EventsChannel: String, CaseIterable, Sendable {
    case detections, events, alerts, cameras, jobs, system
}

/// What `/ws/events` sockets are fed, once per process: the log's events of interest (through a
/// ``LogFollower``), each turned into its channel's message once, then offered to every socket
/// subscribed to that channel.
///
/// - `events`: `{"type": "event", "data": {id, event_id, batch_id, camera_id, risk_score,
///   risk_level, summary, reasoning, started_at}}` when a security event is analyzed (the level
///   under the thresholds in force);
/// - `detections`: `{"type": "detection.new", "data": {id, camera_id, object_type, confidence,
///   detected_at, file_path}}`;
/// - `cameras`: `{"type": "camera.registered" | "camera.updated" | "camera.removed", "data":
///   {…the event's fields…}}`;
/// - `jobs`: `{"type": "job.queued", "data": {event_id, job_id, reason}}` when a re-analysis is
///   asked for;
/// - `alerts`: `{"type": "alert.created", "data": {id, event_id, rule_id, rule_name, severity,
///   status, camera_id, risk_score, dedup_key, summary, created_at}}` when a rule fires, and
///   `alert.delivered` | `alert.delivery_failed` | `alert.delivery_suppressed` |
///   `alert.acknowledged` | `alert.dismissed` with the change's fields.
///
/// A socket whose buffer (`VIGIL_WS_BUFFER` messages) overflows is closed with 1013 (try again
/// later): this feed is live only; `/ws/log` is the one to resume.
final class EventsFeed: Service, Sendable {
    static let types = [
        SecurityEventAnalyzed.type, DetectionRecorded.type, CameraRegistered.type, CameraUpdated.type,
        CameraRemoved.type, ReanalysisRequested.type, AlertTriggered.type, AlertDelivered.type,
        AlertDeliveryFailed.type, AlertDeliverySuppressed.type, AlertAcknowledged.type, AlertDismissed.type,
    ]

    /// A socket's place in the feed.
    final class Subscriber: Sendable {
        let id: UInt64
        let stream: AsyncStream<ByteBuffer>
        let continuation: AsyncStream<ByteBuffer>.Continuation
        private let state: Mutex<(channels: Set<EventsChannel>, overflowed: Bool)>

        init(id: UInt64, channels: Set<EventsChannel>, capacity: Int) {
            self.id = id
            state = Mutex((channels, false))
            (stream, continuation) = AsyncStream.makeStream(
                of: ByteBuffer.self, bufferingPolicy: .bufferingOldest(capacity))
        }

        var channels: Set<EventsChannel> {
            get { state.withLock { $0.channels } }
        }

        func update(_ change: (inout Set<EventsChannel>) -> Void) -> Set<EventsChannel> {
            state.withLock { state in
                change(&state.channels)
                return state.channels
            }
        }

        var overflowed: Bool { state.withLock { $0.overflowed } }

        /// Offers a message of `channel`; false when it did not fit (the subscriber is then over).
        func offer(_ message: ByteBuffer, on channel: EventsChannel) -> Bool {
            guard state.withLock({ $0.channels.contains(channel) }) else { return true }
            if case .dropped = continuation.yield(message) {
                state.withLock { $0.overflowed = true }
                continuation.finish()
                return false
            }
            return true
        }
    }

    private let follower: LogFollower
    private let settings: SystemSettingsReader
    private let logger: Logger
    private let capacity: Int
    /// The feed's failures, for `/api/system/health/websocket`.
    let health = TailHealth()
    private let subscribers = Mutex<(all: [UInt64: Subscriber], nextID: UInt64, stopped: Bool)>(([:], 0, false))
    private let start = Mutex<Checkpoint?>(nil)

    init(follower: LogFollower, settings: SystemSettingsReader, logger: Logger, capacity: Int) {
        self.follower = follower
        self.settings = settings
        self.logger = logger
        self.capacity = max(1, capacity)
    }

    /// Where the feed starts following: the log's head when first asked. The server asks before
    /// it accepts sockets (`beforeServerStarts`), so every event committed after a socket
    /// subscribed is after it. Taken in ``run()`` instead, a feed that started late (a loaded
    /// machine, a pool still connecting) began after events its first sockets were owed.
    func startingPoint() async throws -> Checkpoint {
        if let start = start.withLock({ $0 }) { return start }
        let head = try await follower.store.head()
        return start.withLock { start in
            if start == nil { start = head }
            return start ?? head
        }
    }

    /// A new subscriber to `channels`; nil once the feed has stopped.
    func subscribe(_ channels: Set<EventsChannel>) -> Subscriber? {
        subscribers.withLock { state in
            guard !state.stopped else { return nil }
            state.nextID += 1
            let subscriber = Subscriber(id: state.nextID, channels: channels, capacity: capacity)
            state.all[subscriber.id] = subscriber
            return subscriber
        }
    }

    var hasSubscribers: Bool { subscribers.withLock { !$0.all.isEmpty } }

    var subscriberCount: Int { subscribers.withLock { $0.all.count } }

    /// How many sockets are subscribed to `channel`.
    func subscriberCount(on channel: EventsChannel) -> Int {
        subscribers.withLock { $0.all.values.filter { $0.channels.contains(channel) }.count }
    }

    func unsubscribe(_ subscriber: Subscriber) {
        _ = subscribers.withLock { $0.all.removeValue(forKey: subscriber.id) }
        subscriber.continuation.finish()
    }

    /// Whether a socket is subscribed to `channel`.
    func hasSubscribers(on channel: EventsChannel) -> Bool {
        subscribers.withLock { $0.all.values.contains { $0.channels.contains(channel) } }
    }

    /// Offers `message` to every socket subscribed to `channel`.
    func publish(_ message: ByteBuffer, on channel: EventsChannel) {
        let overflowed = subscribers.withLock { state in
            var overflowed = 0
            for (id, subscriber) in state.all where !subscriber.offer(message, on: channel) {
                state.all[id] = nil
                overflowed += 1
            }
            return overflowed
        }
        if overflowed > 0 {
            logger.notice(
                "/ws/events sockets too slow for their buffer: closed", metadata: ["sockets": "\(overflowed)"])
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var position: Checkpoint?
            await self.health.keepReading("the /ws/events feed lost the log", logger: self.logger) {
                let start: Checkpoint
                if let position { start = position } else { start = try await self.startingPoint() }
                position = start
                try await self.follower.follow(from: start, filter: LogFilter(types: Self.types)) { step in
                    // Nothing is rendered (no query, no JSON) while no socket listens.
                    if case .event(let item) = step, self.hasSubscribers,
                        let (channel, message) = try await self.message(for: item.event)
                    {
                        self.publish(message, on: channel)
                    }
                    position = step.checkpoint
                    self.health.succeeded()
                }
            }
        }
        let all = subscribers.withLock { state in
            state.stopped = true
            defer { state.all.removeAll() }
            return Array(state.all.values)
        }
        for subscriber in all { subscriber.continuation.finish() }
    }

    /// The channel and message of a log event; nil for one no channel shows.
    func message(for event: RecordedEvent) async throws -> (EventsChannel, ByteBuffer)? {
        var writer = JSONWriter()
        let channel: EventsChannel
        switch event.type {
        case SecurityEventAnalyzed.type:
            let analyzed = try SecurityEventAnalyzed.decode(event.data)
            // Where and when it started: its stream's first event (the log has it, whatever the
            // read models have applied so far).
            guard let first = try await follower.store.readStream(event.stream, limit: 1)?.events.first,
                first.type == SecurityEventOpened.type
            else { return nil }
            let opened = try SecurityEventOpened.decode(first.data)
            let level = try await settings.current().thresholds.level(analyzed.riskScore)
            channel = .events
            writer.object { object in
                object.field("type", "event")
                object.object("data") { data in
                    data.field("id", analyzed.id)
                    data.field("event_id", analyzed.id)
                    data.field("batch_id", opened.batchId)
                    data.field("camera_id", opened.cameraId)
                    data.field("risk_score", analyzed.riskScore)
                    data.field("risk_level", level.rawValue)
                    data.field("summary", analyzed.summary)
                    data.field("reasoning", analyzed.reasoning)
                    data.field("started_at", EventCoding.timestamp(opened.startedAt))
                }
            }
        case DetectionRecorded.type:
            let detection = try DetectionRecorded.decode(event.data)
            channel = .detections
            writer.object { object in
                object.field("type", "detection.new")
                object.object("data") { data in
                    data.field("id", detection.id)
                    data.field("camera_id", detection.cameraId)
                    data.field("object_type", detection.objectType)
                    data.field("confidence", detection.confidence)
                    data.field("detected_at", EventCoding.timestamp(detection.detectedAt))
                    data.field("file_path", detection.filePath)
                }
            }
        case CameraRegistered.type, CameraUpdated.type, CameraRemoved.type:
            let name = ["CameraRegistered": "registered", "CameraUpdated": "updated", "CameraRemoved": "removed"]
            channel = .cameras
            writer.object { object in
                object.field("type", "camera.\(name[event.type] ?? "updated")")
                object.raw("data", json: event.data)
            }
        case ReanalysisRequested.type:
            let requested = try ReanalysisRequested.decode(event.data)
            channel = .jobs
            writer.object { object in
                object.field("type", "job.queued")
                object.object("data") { data in
                    data.field("event_id", requested.id)
                    data.field(
                        "job_id", DeterministicID.uuid("AnalysisJob", event.id.uuidString).uuidString.lowercased())
                    data.field("reason", requested.reason)
                }
            }
        case AlertTriggered.type:
            let alert = try AlertTriggered.decode(event.data)
            channel = .alerts
            writer.object { object in
                object.field("type", "alert.created")
                object.object("data") { data in
                    data.field("id", alert.id)
                    data.field("event_id", alert.eventId)
                    data.field("rule_id", alert.ruleId)
                    data.field("rule_name", alert.ruleName)
                    data.field("severity", alert.severity.rawValue)
                    data.field("status", AlertStatus.pending.rawValue)
                    data.field("camera_id", alert.cameraId)
                    data.field("risk_score", alert.riskScore)
                    data.field("dedup_key", alert.dedupKey)
                    data.field("summary", alert.summary)
                    data.field("created_at", EventCoding.timestamp(alert.createdAt))
                }
            }
        case AlertDelivered.type, AlertDeliveryFailed.type, AlertDeliverySuppressed.type, AlertAcknowledged.type,
            AlertDismissed.type:
            // The change as its event has it: `{id, …_at, …}`.
            let name = [
                "AlertDelivered": "delivered", "AlertDeliveryFailed": "delivery_failed",
                "AlertDeliverySuppressed": "delivery_suppressed",
                "AlertAcknowledged": "acknowledged", "AlertDismissed": "dismissed",
            ]
            channel = .alerts
            writer.object { object in
                object.field("type", "alert.\(name[event.type] ?? "updated")")
                object.raw("data", json: event.data)
            }
        default:
            return nil
        }
        return (channel, writer.buffer)
    }
}
