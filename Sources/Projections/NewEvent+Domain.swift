import Domain
import EventStore
import Foundation
import PostgresNIO

extension NewEvent {
    /// A domain event ready to append: its type, schema version, data and metadata.
    public init(_ event: some DomainEvent, id: UUID = UUID(), metadata: EventMetadata) throws {
        let eventType = Swift.type(of: event)
        self.init(
            id: id,
            type: eventType.type,
            schemaVersion: eventType.schemaVersion,
            data: try event.encodedData(),
            metadata: try metadata.encoded()
        )
    }
}
