import EventStore
import Hummingbird

/// Answers `503 {"detail": "Database unavailable"}` at once while PostgreSQL is down (see
/// ``DatabaseAvailability``), and cuts short a request still waiting on the database when it
/// goes down. `/health` (liveness) never depends on it; `/ready` says so in its own format.
struct AvailabilityMiddleware<Context: RequestContext>: RouterMiddleware {
    let availability: DatabaseAvailability

    static var unavailable: APIError { APIError(.serviceUnavailable, "Database unavailable") }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        if path == "/health" || path == "/ready" { return try await next(request, context) }
        guard availability.isUp else { throw Self.unavailable }
        // Whichever comes first: the answer, or the database going down (which cancels the
        // request: a wait for a pooled connection ends at once, a transaction rolls back).
        return try await withoutActuallyEscaping(next) { escapingNext in
            // Safe: the task group below ends (awaiting its children) before this closure
            // returns, so `next` never outlives the call it was passed to.
            nonisolated(unsafe) let next = escapingNext
            return try await withThrowingTaskGroup(of: Response?.self) { group in
                group.addTask { try await next(request, context) }
                group.addTask {
                    await availability.waitUntilDown()
                    return nil
                }
                defer { group.cancelAll() }
                do {
                    guard let response = try await group.next() ?? nil else { throw Self.unavailable }
                    return response
                } catch  where !availability.isUp {
                    throw Self.unavailable
                }
            }
        }
    }
}
