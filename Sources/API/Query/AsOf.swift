import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `?as_of=` on the GET routes of a security event, a camera and the system settings: the
/// resource as it was at a point of the log, folded from its stream (``TimeTravel``).
///
/// The point is a log checkpoint (32 hexadecimal digits: one from `GET /api/log`, or the
/// `checkpoint` of a change in `GET /api/events/{id}/history`), meaning just after that event,
/// or an ISO 8601 time or date, meaning what had been recorded by then. The answer is the
/// route's usual body with an `as_of` object added: the point, and the version, checkpoint and
/// time of the resource's last change folded in (version 0: none yet).
struct AsOf {
    static let parameter = "as_of"

    let point: LogPoint

    /// The point the query asks for, nil without `as_of`. A malformed checkpoint is the 400
    /// `GET /api/log` answers for one; anything else that is not a time is a 422.
    init?(_ query: QueryParameters) throws {
        guard let text = query.string(Self.parameter).map(QueryParameters.restoringOffsetSign), !text.isEmpty else {
            return nil
        }
        if text.utf8.count == 32, text.utf8.allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }) {
            point = .checkpoint(try Self.checkpoint(text))
        } else if let time = Timestamp.parse(text) {
            try QueryParameters.checkRepresentable(time, Self.parameter)
            point = .time(time)
        } else {
            throw ValidationError(
                location: ["query", Self.parameter],
                message: "Input should be a log checkpoint (32 hexadecimal digits) or a valid datetime or date",
                type: "value_error")
        }
    }

    /// A checkpoint token a client sent: malformed ones are a 400.
    static func checkpoint(_ token: String) throws -> Checkpoint {
        do {
            return try Checkpoint(token: token)
        } catch {
            throw APIError.badRequest("Invalid checkpoint: \(error)")
        }
    }

    /// The 409 for a checkpoint the log can't answer for yet.
    static func notReadable(_ error: LogReadError) -> APIError {
        APIError.conflict("Checkpoint not readable yet: \(error)")
    }

    /// Runs a read back in time at this point.
    func read<Value>(_ body: (LogPoint) async throws -> Value) async throws -> Value {
        do {
            return try await body(point)
        } catch let error as LogReadError {
            throw Self.notReadable(error)
        }
    }

    /// How the point reads in answers and messages.
    var description: String {
        switch point {
        case .checkpoint(let checkpoint): checkpoint.token
        case .time(let time): EventCoding.timestamp(time)
        }
    }

    /// The `as_of` object: the point, and the resource's last change folded in.
    func write<Value>(_ folded: TimeTravel.Folded<Value>, into object: inout JSONWriter.ObjectWriter) {
        object.object("as_of") { stamp in
            stamp.field("point", description)
            stamp.field("version", folded.version)
            stamp.field("checkpoint", folded.checkpoint?.token)
            stamp.field("recorded_at", folded.recordedAt.map(JSONWriter.microseconds))
        }
    }

    /// A read model's item JSON as it was, with the `as_of` object; a 404 if the resource did
    /// not exist at the point.
    func itemResponse(_ folded: TimeTravel.Folded<String>?, notFound: String) throws -> Response {
        guard let folded else { throw APIError.notFound("\(notFound) as of \(description)") }
        // The item is a JSON object rendered by PostgreSQL: its closing brace gives way to one
        // more field.
        var body = JSONWriter()
        body.raw(json: String(folded.value.dropLast()))
        body.raw(json: ",")
        var stamp = JSONWriter()
        stamp.object { write(folded, into: &$0) }
        body.raw(json: String(String(buffer: stamp.buffer).dropFirst()))
        return body.response()
    }
}
