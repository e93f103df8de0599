import EventStore
import Hummingbird

/// An error with the seed's body: `{"detail": "…"}`.
public struct APIError: HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var detail: String

    public init(_ status: HTTPResponse.Status, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    public static func notFound(_ detail: String) -> APIError { APIError(.notFound, detail) }
    public static func badRequest(_ detail: String) -> APIError { APIError(.badRequest, detail) }
    public static func conflict(_ detail: String) -> APIError { APIError(.conflict, detail) }
    public static func unauthorized(_ detail: String) -> APIError { APIError(.unauthorized, detail) }

    public var description: String { "\(status.code) \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body = JSONWriter()
        body.object { $0.field("detail", detail) }
        return body.response(status: status)
    }
}

/// A validation failure, 422 with FastAPI's body: `{"detail": [{"loc", "msg", "type"}]}`.
public struct ValidationError: HTTPResponseError, CustomStringConvertible {
    public struct Issue: Sendable, Equatable {
        public var location: [String]
        public var message: String
        public var type: String
        /// FastAPI's `ctx.error`: the detail of a JSON syntax error.
        public var reason: String?

        public init(location: [String], message: String, type: String, reason: String? = nil) {
            self.location = location
            self.message = message
            self.type = type
            self.reason = reason
        }

        /// `{"loc", "msg", "type"}` (and `ctx` when there is a reason); array indices in `loc`
        /// are numbers, as in FastAPI's `["body", 0, "confidence"]`.
        func write(to item: inout JSONWriter.ObjectWriter) {
            item.array("loc") { loc in
                for part in location {
                    if let index = Int(part), index >= 0 { loc.raw(json: String(index)) } else { loc.string(part) }
                }
            }
            item.field("msg", message)
            item.field("type", type)
            if let reason { item.object("ctx") { $0.field("error", reason) } }
        }
    }

    public var issues: [Issue]
    public var status: HTTPResponse.Status { .unprocessableContent }

    public init(_ issues: [Issue]) { self.issues = issues }

    public init(location: [String], message: String, type: String) {
        self.init([Issue(location: location, message: message, type: type)])
    }

    public var description: String {
        issues.map { "\($0.location.joined(separator: ".")): \($0.message)" }.joined(separator: "; ")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body = JSONWriter()
        body.object { object in
            object.array("detail") { array in
                for issue in issues {
                    array.object { issue.write(to: &$0) }
                }
            }
        }
        return body.response(status: status)
    }
}

/// A write is in the log, but the read models it waited for (read your writes) did not apply it
/// in time: `202 Accepted` with the write's checkpoint, never a response built from a read model
/// that predates the write. The change shows once they catch up (`GET /api/projections` says
/// how far behind they are); retrying the request is not needed.
public struct ReadModelsBehind: HTTPResponseError, CustomStringConvertible {
    public var checkpoint: Checkpoint
    public var projections: [String]

    public var status: HTTPResponse.Status { .accepted }

    public var description: String {
        "Accepted: the change is in the log (checkpoint \(checkpoint.token)), but the read models "
            + "(\(projections.joined(separator: ", "))) have not applied it yet; it shows once they have"
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body = JSONWriter()
        body.object {
            $0.field("detail", description)
            $0.field("checkpoint", checkpoint.token)
        }
        return body.response(status: status)
    }
}
