import EventStore
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import _ConnectionPoolModule

/// Turns every error into the seed's format: our own errors render themselves, the router's
/// (404, 405…) get `{"detail": reason}`, a refused append (wrong stream version, an event id
/// already used, a contended stream) a 409, a database outage is a 503, anything else a logged
/// 500 without internals.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Where a 500 or an outage is logged: the server's logger, whose records at or above
    /// `VIGIL_LOG_RECORD_LEVEL` `/api/logs` keeps (nil: the request's, which only prints). The
    /// request's own logger is Hummingbird's, which also logs every malformed request an
    /// attacker can send; so it is not recorded, and these two are, on purpose.
    let logger: Logger?

    public init(logger: Logger? = nil) { self.logger = logger }

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
        } catch let error as ReadModelsBehind {
            throw error
        } catch let error as HTTPError {
            let detail = error.body ?? error.status.reasonPhrase
            var body = JSONWriter()
            body.object { $0.field("detail", detail) }
            var response = body.response(status: error.status)
            response.headers.append(contentsOf: error.headers)
            return response
        } catch AppendError.streamArchived(let stream) {
            // What it names is gone from the read side (or is about to be): not found.
            throw APIError.notFound("'\(stream)' was archived by retention and takes no more events")
        } catch let error as AppendError where error.isConflict {
            // A route that maps the refusal to its own words has done so already; any other
            // refusal of the log's writer is still the client's conflict, never a 500.
            context.logger.notice("append refused", metadata: ["error": "\(error)"])
            throw APIError.conflict("Conflict: \(error); retry")
        } catch let error where Self.isDatabaseUnavailable(error) {
            log("database unavailable", error, request, context)
            throw APIError(.serviceUnavailable, "Database unavailable")
        } catch {
            log("unhandled error", error, request, context)
            throw APIError(.internalServerError, "Internal server error")
        }
    }

    private func log(_ message: Logger.Message, _ error: any Error, _ request: Request, _ context: Context) {
        (logger ?? context.logger).error(
            message,
            metadata: [
                "error": "\(String(reflecting: error))", "method": "\(request.method.rawValue)",
                "path": "\(request.uri.path)",
            ])
    }

    /// The database could not be reached or went away: no connection (PostgresNIO's pool errors,
    /// a connection error without a server answer, a closed connection), or the server said it
    /// is shutting down or not accepting connections (SQLSTATE classes 08 and 57P).
    static func isDatabaseUnavailable(_ error: any Error) -> Bool {
        if error is PostgresConnectionClosed || error is ConnectionPoolError || error is ConnectionLeaseTimeout {
            return true
        }
        guard let error = error as? PSQLError else { return false }
        guard let state = error.serverInfo?[.sqlState] else { return true }
        return state.hasPrefix("08") || state.hasPrefix("57P")
    }
}
