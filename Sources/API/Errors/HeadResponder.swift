import HTTPTypes
import Hummingbird

/// `HEAD` on any `GET` route answers like `GET` (status and headers, with the length the body
/// would have) without the body. It wraps the router (routes are matched before router
/// middleware runs, so the method must change before that), and errors are stripped too.
struct HeadResponder<Base: HTTPResponder>: HTTPResponder where Base.Context: RequestContext {
    typealias Context = Base.Context
    let base: Base

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await base.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        let response: Response
        do {
            response = try await base.respond(to: Request(head: head, body: request.body), context: context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        var headers = response.headers
        if let length = response.body.contentLength { headers[.contentLength] = String(length) }
        return Response(status: response.status, headers: headers, body: .init())
    }
}
