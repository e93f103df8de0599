import Domain
import Foundation

// The one bridge from the domain to the log: every writer (API commands, ingest, the pipeline's
// reactors and worker, imports, tests) turns a `DomainEvent` into a `NewEvent` here. It lives in
// the store, next to `NewEvent`, so the store's users share it without depending on the read
// side; it needs nothing of the domain but the `DomainEvent` protocol and `EventMetadata`.

extension NewEvent {
    /// A domain event ready to append: its type, schema version, data and metadata.
    public init(_ event: some DomainEvent, id: UUID = .random(), metadata: EventMetadata) throws {
        let eventType = Swift.type(of: event)
        self.init(
            id: id,
            type: eventType.type,
            schemaVersion: eventType.schemaVersion,
            data: try event.encodedData(),
            metadata: try metadata.encoded(),
            requestDigest: metadata.requestDigest
        )
    }
}
