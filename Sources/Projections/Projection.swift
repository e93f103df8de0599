import EventStore
import Logging
import PostgresNIO

/// A read model built from the log.
///
/// `apply` gets the events of one page, in log order, and writes the read model with
/// set-based SQL on `connection`, inside the runner's transaction: the runner commits the
/// rows and the projection's checkpoint together, so an event is applied exactly once even
/// if the process dies between or inside batches.
public protocol Projection: Sendable {
    /// Unique name; also the key of its checkpoint and of its lease.
    var name: String { get }
    /// The events it needs (the runner skips the rest, and still moves its checkpoint past them).
    var filter: LogFilter { get }
    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws
}
