import EventStore
import Hummingbird

/// Answers `503 {"detail": "Database unavailable"}` at once while PostgreSQL is down (see
/// ``DatabaseAvailability``), and cuts short a request still waiting on the database when it
/// goes down. The health routes (``healthPaths``) pass: liveness never depends on it, and the
/// others say so in their own format.
struct AvailabilityMiddleware<Context: RequestContext>: RouterMiddleware {
    let availability: DatabaseAvailability

    static var unavailable: APIError { APIError(.serviceUnavailable, "Database unavailable") }

    static var healthPaths: Set<String> {
        [
            "/health", "/ready", "/api/system/health", "/api/system/health/live", "/api/system/health/ready",
            "/api/system/health/websocket",
        ]
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        if Self.healthPaths.contains(path) { return try await next(request, context) }
        // Whichever comes first: the answer, or the database going down (which cancels the
        // request: a wait for a pooled connection ends at once, a transaction rolls back).
        do {
            return try await availability.untilDown { try await next(request, context) }
        } catch is DatabaseAvailability.Down {
            throw Self.unavailable
        }
    }
}
