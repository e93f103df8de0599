import HTTPTypes
import Hummingbird
import NIOCore

/// How large a request body may be, by route class. Decided from `Content-Length` before any
/// byte of the body is read (`413`), and enforced again while a body without one is collected
/// (PostgresNIO-free: NIO's `NIOTooManyBytesError`, also a `413`).
enum BodyLimits {
    /// Any JSON route: a camera, a review, a detection, a config change.
    static let json = 1 << 20
    /// `POST /api/detections/batch` with a JSON array (at most 10,000 detections).
    static let jsonBatch = 64 << 20
    /// One line of an NDJSON upload. The upload itself has no limit: it is read and appended
    /// chunk by chunk, in bounded memory.
    static let ndjsonLine = 1 << 20

    /// The limit of `request`'s body, or nil for an NDJSON stream.
    static func limit(for request: Request) -> Int? {
        guard request.uri.path.hasSuffix("/api/detections/batch") else { return json }
        let type = request.headers[.contentType]?.lowercased() ?? ""
        if type.hasPrefix("application/x-ndjson") || type.hasPrefix("application/jsonl") { return nil }
        return jsonBatch
    }

    /// The rest of the body is not read: the answer closes the connection, so a client can't
    /// hold it by sending on.
    static func tooLarge(_ limit: Int?) -> APIError {
        APIError(
            .contentTooLarge,
            limit.map { "Request body too large: the limit for this route is \($0) bytes" }
                ?? "Request body too large")
    }
}

/// Refuses a body whose `Content-Length` is over its route's limit (``BodyLimits``) with
/// `413 {"detail": …}`, before reading it.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let limit = BodyLimits.limit(for: request), let header = request.headers[.contentLength],
            let length = Int(header), length > limit
        {
            return try BodyLimits.tooLarge(limit).closing(request, context: context)
        }
        do {
            return try await next(request, context)
        } catch is NIOTooManyBytesError {
            // A body without Content-Length that outgrew its route's limit while collected.
            return try BodyLimits.tooLarge(BodyLimits.limit(for: request)).closing(request, context: context)
        }
    }
}

extension APIError {
    /// This error's response, with `Connection: close`.
    func closing(_ request: Request, context: some RequestContext) throws -> Response {
        var response = try response(from: request, context: context)
        response.headers[.connection] = "close"
        return response
    }
}
