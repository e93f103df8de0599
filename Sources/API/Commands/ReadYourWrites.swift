import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

extension GroupCommitAppender {
    /// Appends a command's event (with the request's metadata unless `metadata` is given), then waits for `projections` to
    /// apply it (read your writes). A stream that isn't at `expected` becomes `conflict`.
    @discardableResult
    func appendCommand(
        _ event: some DomainEvent,
        id: UUID = UUID(),
        expected: ExpectedVersion,
        request: Request,
        metadata: EventMetadata? = nil,
        store: EventStore,
        waitFor projections: [String],
        conflict: @autoclosure () -> any Error
    ) async throws -> AppendResult {
        let result: AppendResult
        do {
            result = try await append(
                AppendRequest(
                    stream: event.stream,
                    events: [try NewEvent(event, id: id, metadata: metadata ?? EventMetadata(request))],
                    expected: expected
                ))
        } catch AppendError.wrongExpectedVersion {
            throw conflict()
        }
        if let checkpoint = result.checkpoints.last {
            try await store.waitForProjections(projections, toReach: checkpoint)
        }
        return result
    }
}
