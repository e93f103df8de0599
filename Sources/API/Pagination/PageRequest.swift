import Foundation
import HTTPTypes
import Hummingbird
import Projections

/// `limit`, `offset` and `cursor` of a list request, checked.
struct PageRequest {
    static let deprecationWarning =
        "Offset pagination is deprecated and will be removed in a future version. Please use cursor-based "
        + "pagination instead by using the 'cursor' parameter with the 'next_cursor' value from the response."

    var limit: Int
    var offset: Int
    var cursor: Cursor?

    init(_ query: QueryParameters, idIsInteger: Bool = true) throws {
        limit = try query.integer("limit", default: 100, in: 1...1000)
        offset = try query.integer("offset", default: 0, in: 0...Int(Int32.max))
        if let text = query.string("cursor") {
            do throws(CursorError) {
                let cursor = try Cursor.decode(text)
                if case .integer = cursor.id, !idIsInteger { throw CursorError("'id' must be a string") }
                if case .text = cursor.id, idIsInteger { throw CursorError("'id' must be an integer") }
                self.cursor = cursor
            } catch {
                throw APIError.badRequest("Invalid cursor: \(error.reason)")
            }
            if offset > 0 {
                throw APIError.badRequest("Cannot use both 'offset' and 'cursor' pagination. Choose one.")
            }
        }
    }

    /// The page the read model is asked for.
    var bounds: PageBounds { PageBounds(limit: limit, offset: offset, after: cursor?.position) }

    /// Offset paging without a cursor: deprecated (the seed's warning and a `Deprecation` header).
    var isDeprecatedOffset: Bool { cursor == nil && offset > 0 }

    /// The seeds' envelope around a read model's page: the items under `key` (`events`,
    /// `detections`, `cameras`), the exact `count`, and the cursor of the next page.
    func response(_ page: ListPage, key: String) -> Response {
        var body = JSONWriter()
        body.object { object in
            object.array(key) { array in for item in page.items { array.raw(json: item) } }
            object.field("count", page.total)
            object.field("limit", limit)
            object.field("offset", offset)
            object.field("next_cursor", page.next.map { Cursor($0).encoded })
            object.field("has_more", page.hasMore)
            object.field("deprecation_warning", isDeprecatedOffset ? Self.deprecationWarning : nil)
        }
        var headers = HTTPFields()
        if isDeprecatedOffset { headers[HTTPField.Name("Deprecation")!] = "true" }
        return body.response(headers: headers)
    }
}

/// A 200 with `json` (JSON text a read model rendered) as its body, or a 404 with `notFound`
/// when there is none.
func itemResponse(_ json: String?, notFound: String, status: HTTPResponse.Status = .ok) throws -> Response {
    guard let json else { throw APIError.notFound(notFound) }
    return jsonResponse(json, status: status)
}

/// A 200 with `json` (already JSON text) as its body.
func jsonResponse(_ json: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    var body = JSONWriter()
    body.raw(json: json)
    return body.response(status: status, headers: headers)
}
