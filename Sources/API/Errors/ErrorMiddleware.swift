import Hummingbird
import Logging
import PostgresNIO

/// Turns every error into the seed's format: our own errors render themselves, the router's
/// (404, 405…) get `{"detail": reason}`, a database outage is a 503, anything else a logged
/// 500 without internals.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch let error as HTTPError {
            let detail = error.body ?? error.status.reasonPhrase
            var body = JSONWriter()
            body.object { $0.field("detail", detail) }
            var response = body.response(status: error.status)
            response.headers.append(contentsOf: error.headers)
            return response
        } catch let error as PSQLError where error.serverInfo == nil {
            context.logger.error("database unavailable", metadata: ["error": "\(String(reflecting: error))"])
            throw APIError(.serviceUnavailable, "Database unavailable")
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            throw APIError(.internalServerError, "Internal server error")
        }
    }
}
