import Domain
import EventStore
import Foundation
import PostgresNIO
import Projections

extension EventStore {
    /// Appends `history`'s cameras, then its security events `range` (each with its
    /// detections), by bulk COPY in chunks; security event `n` gets id `n + 1`. Moves the id
    /// sequences past what it wrote. `progress` gets the number of security events written.
    public func appendSynthetic(
        _ history: SyntheticHistory,
        events range: Range<Int>,
        detectionsPerEvent: Int = 1,
        chunk: Int = 10_000,
        progress: (@Sendable (Int) -> Void)? = nil
    ) async throws {
        let metadata = EventMetadata(actor: SystemActor.synthetic, imported: true)
        if range.lowerBound == 0 {
            _ = try await appendBulk(try history.cameras.map { ($0.stream, try NewEvent($0, metadata: metadata)) })
        }
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start + chunk, range.upperBound)
            var items: [(stream: String, event: NewEvent)] = []
            items.reserveCapacity((end - start) * (detectionsPerEvent + 3))
            for n in start..<end {
                for event in history.securityEvent(
                    n, id: Int64(n + 1), firstDetectionID: Int64(n * detectionsPerEvent + 1),
                    detectionsPerEvent: detectionsPerEvent)
                {
                    items.append((event.stream, try NewEvent(event, metadata: metadata)))
                }
            }
            _ = try await appendBulk(items)
            progress?(end - range.lowerBound)
            start = end
        }
        let lastEvent = Int64(range.upperBound)
        let lastDetection = Int64(range.upperBound * detectionsPerEvent)
        try await client.guardedQuery(
            """
            SELECT setval('security_event_ids', greatest(\(lastEvent), (SELECT last_value FROM security_event_ids))),
                   setval('detection_ids', greatest(\(lastDetection), (SELECT last_value FROM detection_ids)))
            """, logger: logger)
    }
}
