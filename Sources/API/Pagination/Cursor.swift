import Domain
import Foundation
import Projections

/// The seeds' pagination cursor: base64 of `{"id": …, "created_at": "…"}`, where `created_at`
/// is the sort timestamp of the last item of a page and `id` breaks ties.
///
/// The timestamp is kept as the text PostgreSQL rendered (`vigil_ts`, microseconds) and bound
/// back as `timestamptz`, so it round-trips exactly; `Date` would lose precision.
struct Cursor: Equatable {
    typealias ID = ListPosition.ID

    var id: ID
    var createdAt: String

    init(id: ID, createdAt: String) {
        self.id = id
        self.createdAt = createdAt
    }

    /// The cursor of a page that starts after `position`.
    init(_ position: ListPosition) { self.init(id: position.id, createdAt: position.time) }

    /// Where the page it asks for starts.
    var position: ListPosition { ListPosition(time: createdAt, id: id) }

    /// Base64 (standard alphabet, padded) of compact JSON.
    var encoded: String {
        let id: String =
            switch self.id {
            case .integer(let value): String(value)
            case .text(let value): JSONWriter.quoted(value)
            }
        let json = #"{"id":\#(id),"created_at":\#(JSONWriter.quoted(createdAt))}"#
        return Data(json.utf8).base64EncodedString()
    }

    /// Decodes a client's cursor: standard or URL-safe base64, with or without padding. A
    /// space is the `+` of a cursor put into a URL unescaped (a query reads `+` as a space;
    /// base64 has none).
    /// Errors are the reason shown after `Invalid cursor: `.
    static func decode(_ text: String) throws(CursorError) -> Cursor {
        var base64 = text.replacingOccurrences(of: " ", with: "+").trimmingCharacters(in: .whitespaces)
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if base64.count % 4 != 0 { base64 += String(repeating: "=", count: 4 - base64.count % 4) }
        guard !text.isEmpty, let data = Data(base64Encoded: base64) else { throw CursorError("not valid base64") }
        let object: [String: JSONValue]
        switch Result(catching: { () throws(StrictJSON.Failure) in try StrictJSON.parse(data) }) {
        case .success(.object(let value)): object = value
        case .failure(let failure) where failure.type != "json_invalid":
            throw CursorError("\(failure.location.joined(separator: ".")): \(failure.message)")
        default: throw CursorError("not a JSON object")
        }
        let id: ID
        switch object["id"] {
        case .number(let value) where value == value.rounded() && abs(value) < 9e15: id = .integer(Int64(value))
        case .string(let value) where !value.isEmpty: id = .text(value)
        case nil: throw CursorError("missing 'id'")
        default: throw CursorError("'id' must be an integer or a string")
        }
        guard case .string(let createdAt) = object["created_at"] else {
            throw CursorError("missing or non-string 'created_at'")
        }
        guard let microseconds = Timestamp.parseMicroseconds(createdAt) else {
            throw CursorError("'created_at' is not an ISO 8601 timestamp")
        }
        // Bound back as `timestamptz`, in the one form PostgreSQL renders (`vigil_ts`): a comma,
        // a long fraction or an offset PostgreSQL's input refuses (past ±15:59) reads back as the
        // same instant; a cursor the server made is unchanged. Years 0001-9999 only.
        guard let canonical = Timestamp.format(microsecondsSince1970: microseconds) else {
            throw CursorError("'created_at' is out of range (years 0001-9999)")
        }
        return Cursor(id: id, createdAt: canonical)
    }
}

struct CursorError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
