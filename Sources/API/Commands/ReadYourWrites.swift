import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// Read your writes: a command waits for the read models its answer (and the client's next
/// read) comes from to apply its write, for at most `timeout`
/// (`VIGIL_READ_YOUR_WRITES_TIMEOUT_SECONDS`, 10).
///
/// It looks at the checkpoints when a runner's commit is notified (``LogNotifier/progress``),
/// and every `poll` in case a notification was lost.
struct ReadYourWrites: Sendable {
    let store: EventStore
    let timeout: Duration
    let progress: ChangeSignal
    var poll: Duration = .milliseconds(100)

    /// Waits for `projections` to apply a write at `checkpoint`; when they don't in time, says
    /// so (``ReadModelsBehind``, a 202) rather than answer from read models that predate it.
    func wait(for projections: [String], toReach checkpoint: Checkpoint) async throws {
        guard
            try await store.waitForProjections(
                projections, toReach: checkpoint, timeout: timeout, progress: progress, poll: poll)
        else {
            throw ReadModelsBehind(checkpoint: checkpoint, projections: projections)
        }
    }

    /// For a command that found nothing to change: its answer comes from `projections` too, so
    /// they must have applied `stream` up to `version` (the state the command decided on), as a
    /// write's answer waits for its write. Else a repeat of a change still on its way to the
    /// read models would answer the state before it.
    func wait(for projections: [String], toSee stream: String, atVersion version: Int64) async throws {
        guard version > 0, let checkpoint = try await store.checkpoint(of: stream, version: version) else { return }
        try await wait(for: projections, toReach: checkpoint)
    }
}

extension GroupCommitAppender {
    /// Appends a command's event (with the request's metadata unless `metadata` is given), then waits for `projections` to
    /// apply it (read your writes). A stream that isn't at `expected` becomes `conflict`.
    @discardableResult
    func appendCommand(
        _ event: some DomainEvent,
        id: UUID = .random(),
        expected: ExpectedVersion,
        request: Request,
        metadata: EventMetadata? = nil,
        readYourWrites: ReadYourWrites,
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
            try await readYourWrites.wait(for: projections, toReach: checkpoint)
        }
        return result
    }
}

/// Runs `decide` (read a stream, decide, append with the version read as the expected one) again
/// when another request changed the stream between its read and its append, which
/// ``GroupCommitAppender/appendCommand(_:id:expected:request:metadata:readYourWrites:waitFor:conflict:)``
/// answers with its `conflict`, a `409`: at most `attempts` times in all, the last conflict
/// thrown. Only for commands that decide the same whichever racing request wins (revoking a key:
/// revoked is revoked; a PUT of the severity thresholds: they are replaced whole).
func decidingAgainOnConflict<Value>(attempts: Int = 3, _ decide: () async throws -> Value) async throws -> Value {
    for _ in 1..<attempts {
        do {
            return try await decide()
        } catch let error as APIError where error.status == .conflict {
            continue
        }
    }
    return try await decide()
}
