import Hummingbird

/// `GET /api/system/websocket/events`: every message type the WebSocket feeds send, with its
/// channel, the JSON Schema of its `data` and an example (the seeds' registry). The one table
/// of what ``EventsFeed`` and ``SystemStatusFeed`` send; `EventsSocketTests` checks every
/// message they get against it.
enum WebSocketRegistry {
    struct MessageType: Sendable {
        let type: String
        let channel: EventsChannel
        let description: String
        /// The JSON Schema of the message's `data`.
        let schema: String
        /// A `data` as sent.
        let example: String
        var deprecated = false
    }

    static let dateTime = #"{"type": "string", "format": "date-time"}"#
    static let cameraStatus = #"{"enum": ["online", "offline", "error", "unknown"]}"#

    static let types: [MessageType] = [
        MessageType(
            type: "detection.new", channel: .detections, description: "A detection was recorded",
            schema: """
                {"type": "object", "required": ["id", "camera_id", "object_type", "confidence", "detected_at", \
                "file_path"], "properties": {"id": {"type": "integer"}, "camera_id": {"type": "string"}, \
                "object_type": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}, \
                "detected_at": \(dateTime), "file_path": {"type": "string"}}}
                """,
            example: """
                {"id": 1042, "camera_id": "front_door", "object_type": "person", "confidence": 0.93, \
                "detected_at": "2026-11-28T21:14:03.120Z", "file_path": "/export/front_door/1042.jpg"}
                """),
        MessageType(
            type: "event", channel: .events,
            description: "A security event was analyzed; risk_level follows the thresholds in force",
            schema: """
                {"type": "object", "required": ["id", "event_id", "batch_id", "camera_id", "risk_score", \
                "risk_level", "summary", "reasoning", "started_at"], "properties": {"id": {"type": "integer"}, \
                "event_id": {"type": "integer", "description": "the same as id (legacy)"}, \
                "batch_id": {"type": "string"}, "camera_id": {"type": "string"}, \
                "risk_score": {"type": "integer", "minimum": 0, "maximum": 100}, \
                "risk_level": {"enum": ["low", "medium", "high", "critical"]}, "summary": {"type": "string"}, \
                "reasoning": {"type": "string"}, "started_at": \(dateTime)}}
                """,
            example: """
                {"id": 311, "event_id": 311, "batch_id": "front_door-1764364443", "camera_id": "front_door", \
                "risk_score": 72, "risk_level": "high", "summary": "A person at the door at night", \
                "reasoning": "person, 03:14, two detections", "started_at": "2026-11-28T03:14:03.000Z"}
                """),
        MessageType(
            type: "camera.registered", channel: .cameras, description: "A camera was registered",
            schema: """
                {"type": "object", "required": ["id", "name", "folder_path", "status", "registered_at"], \
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, \
                "folder_path": {"type": "string"}, "status": \(cameraStatus), "registered_at": \(dateTime)}}
                """,
            example: """
                {"id": "front_door", "name": "Front door", "folder_path": "/export/front_door", \
                "status": "online", "registered_at": "2026-11-28T09:00:00.000Z"}
                """),
        MessageType(
            type: "camera.updated", channel: .cameras, description: "A camera's name, folder or status changed",
            schema: """
                {"type": "object", "required": ["id", "updated_at"], "properties": {"id": {"type": "string"}, \
                "name": {"type": "string"}, "folder_path": {"type": "string"}, "status": \(cameraStatus), \
                "updated_at": \(dateTime)}}
                """,
            example: #"{"id": "front_door", "status": "offline", "updated_at": "2026-11-28T10:00:00.000Z"}"#),
        MessageType(
            type: "camera.removed", channel: .cameras, description: "A camera was removed",
            schema: """
                {"type": "object", "required": ["id", "removed_at"], "properties": {"id": {"type": "string"}, \
                "removed_at": \(dateTime)}}
                """,
            example: #"{"id": "front_door", "removed_at": "2026-11-28T11:00:00.000Z"}"#),
        MessageType(
            type: "job.queued", channel: .jobs, description: "A re-analysis of a security event was asked for",
            schema: """
                {"type": "object", "required": ["event_id", "job_id", "reason"], \
                "properties": {"event_id": {"type": "integer"}, "job_id": {"type": "string", "format": "uuid"}, \
                "reason": {"type": ["string", "null"]}}}
                """,
            example: """
                {"event_id": 311, "job_id": "6f1c2a52-3c1e-5b7e-9a43-0d8e5e1f2b10", "reason": "thresholds changed"}
                """),
        MessageType(
            type: "alert.created", channel: .alerts, description: "An alert rule fired for an analyzed security event",
            schema: """
                {"type": "object", "required": ["id", "event_id", "rule_id", "rule_name", "severity", "status", \
                "camera_id", "risk_score", "dedup_key", "summary", "created_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, "event_id": {"type": "integer"}, \
                "rule_id": {"type": "string"}, "rule_name": {"type": "string"}, \
                "severity": {"enum": ["low", "medium", "high", "critical"]}, "status": {"const": "pending"}, \
                "camera_id": {"type": "string"}, "risk_score": {"type": "integer"}, "dedup_key": {"type": "string"}, \
                "summary": {"type": "string"}, "created_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "event_id": 311, \
                "rule_id": "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "rule_name": "person at night", \
                "severity": "high", "status": "pending", "camera_id": "front_door", "risk_score": 72, \
                "dedup_key": "front_door:5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", \
                "summary": "A person at the door", "created_at": "2026-11-28T02:14:00.000Z"}
                """),
        MessageType(
            type: "alert.delivered", channel: .alerts, description: "An alert reached a channel (a webhook)",
            schema: """
                {"type": "object", "required": ["id", "channel", "attempts", "delivered_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, "channel": {"type": "string"}, \
                "target": {"type": ["string", "null"]}, "attempts": {"type": "integer"}, \
                "delivered_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "channel": "webhook", \
                "target": "https://hooks.example.com/vigil", "attempts": 1, "delivered_at": "2026-11-28T02:14:01.000Z"}
                """),
        MessageType(
            type: "alert.delivery_failed", channel: .alerts,
            description: "A channel gave up on an alert after its last attempt (the delivery is parked)",
            schema: """
                {"type": "object", "required": ["id", "channel", "attempts", "error", "failed_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, "channel": {"type": "string"}, \
                "target": {"type": ["string", "null"]}, "attempts": {"type": "integer"}, \
                "error": {"type": "string"}, "failed_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "channel": "webhook", \
                "target": "https://hooks.example.com/vigil", "attempts": 5, "error": "HTTP 503", \
                "failed_at": "2026-11-28T02:16:02.000Z"}
                """),
        MessageType(
            type: "alert.delivery_suppressed", channel: .alerts,
            description: "A channel did not send an alert: the notification preferences said not to (quiet hours…)",
            schema: """
                {"type": "object", "required": ["id", "channel", "reason", "suppressed_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, "channel": {"type": "string"}, \
                "target": {"type": ["string", "null"]}, "reason": {"type": "string"}, \
                "suppressed_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "channel": "webhook", \
                "target": "https://hooks.example.com/vigil", "reason": "quiet hours: Night", \
                "suppressed_at": "2026-11-28T02:14:01.000Z"}
                """),
        MessageType(
            type: "alert.acknowledged", channel: .alerts, description: "Someone acknowledged an alert",
            schema: """
                {"type": "object", "required": ["id", "previous_status", "acknowledged_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, \
                "previous_status": {"enum": ["pending", "delivered"]}, "acknowledged_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "previous_status": "delivered", \
                "acknowledged_at": "2026-11-28T07:30:00.000Z"}
                """),
        MessageType(
            type: "alert.dismissed", channel: .alerts, description: "Someone dismissed an alert",
            schema: """
                {"type": "object", "required": ["id", "previous_status", "dismissed_at"], \
                "properties": {"id": {"type": "string", "format": "uuid"}, \
                "previous_status": {"enum": ["pending", "delivered", "acknowledged"]}, "dismissed_at": \(dateTime)}}
                """,
            example: """
                {"id": "0b5d6c1e-8f2a-8c3d-9e4f-5a6b7c8d9e0f", "previous_status": "acknowledged", \
                "dismissed_at": "2026-11-28T07:31:00.000Z"}
                """),
        MessageType(
            type: "system_status", channel: .system,
            description: "The system's status, every 5 s (also alone on /ws/system)",
            schema: """
                {"type": "object", "required": ["gpu", "cameras", "queue", "health", "projections"], \
                "properties": {"gpu": {"type": "object", "description": "null fields: no worker reports them yet"}, \
                "cameras": {"type": ["object", "null"], "required": ["active", "total"]}, \
                "queue": {"type": ["object", "null"], "required": ["pending", "processing"]}, \
                "health": {"enum": ["healthy", "degraded", "unhealthy"]}, \
                "projections": {"type": ["object", "null"], "required": ["lag_events", "lag_seconds", "unhealthy"]}}}
                """,
            example: """
                {"gpu": {"gpu_name": null, "utilization": null, "memory_used": null, "memory_total": null, \
                "temperature": null, "power_usage": null, "inference_fps": null}, \
                "cameras": {"active": 3, "total": 4}, "queue": {"pending": 0, "processing": 1}, \
                "health": "healthy", "projections": {"lag_events": 0, "lag_seconds": 0, "unhealthy": []}}
                """),
    ]

    static func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/system/websocket/events") { _, _ in
            var body = JSONWriter()
            body.object { object in
                object.array("event_types") { array in
                    for type in types {
                        array.object { item in
                            item.field("type", type.type)
                            item.field("channel", type.channel.rawValue)
                            item.field("description", type.description)
                            item.field("deprecated", type.deprecated)
                            item.raw("payload_schema", json: type.schema)
                            item.raw("example", json: type.example)
                        }
                    }
                }
                object.array("channels") { array in
                    for channel in EventsChannel.allCases { array.string(channel.rawValue) }
                }
                object.field("total_count", types.count)
                object.field("deprecated_count", types.filter(\.deprecated).count)
            }
            return body.response()
        }
    }
}
