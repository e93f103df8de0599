import EventStore
import Foundation

extension JSONWriter.ObjectWriter {
    /// An event of the log as the API shows it; `data` and `metadata` pass through as stored.
    mutating func event(_ event: RecordedEvent) {
        field("checkpoint", event.checkpoint.token)
        field("position", event.position)
        field("event_id", event.id.uuidString.lowercased())
        field("stream", event.stream)
        field("version", event.version)
        field("type", event.type)
        field("schema_version", Int64(event.schemaVersion))
        raw("data", json: event.data)
        raw("metadata", json: event.metadata)
        field("recorded_at", JSONWriter.microseconds(event.recordedAt))
    }
}
