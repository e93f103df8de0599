import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import PostgresNIO

/// SQL with positional binds, built up piece by piece (filters vary per request).
struct SQLBuilder {
    private(set) var binds = PostgresBindings()
    private(set) var conditions: [String] = []

    /// Binds `value` and returns its placeholder (`$n`).
    mutating func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    mutating func condition(_ sql: String) { conditions.append(sql) }

    /// `AND`-joined conditions, or `true`.
    var conjunction: String { conditions.isEmpty ? "true" : conditions.joined(separator: " AND ") }

    func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}

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

    /// Offset paging without a cursor: deprecated (the seed's warning and a `Deprecation` header).
    var isDeprecatedOffset: Bool { cursor == nil && offset > 0 }
}

/// One of the paginated lists: its view, its order and how an item is rendered.
struct ListSpec {
    /// The envelope's key for the items (`events`, `detections`, `cameras`).
    var key: String
    /// The read model (a `public` view).
    var table: String
    /// The sort timestamp (descending, then `id` descending): the cursor's `created_at`.
    var timeColumn: String
    var idIsInteger: Bool
    /// Which rows a list shows at all (soft-deleted ones don't).
    var visible: String
    /// A table of visible rows per camera (`camera_id`, `n`), if the read model keeps one.
    var totals: String? = nil

    /// `count` from the totals table, for a list filtered by the camera at most (nil: no
    /// totals table).
    func totalsCount(camera: String?, _ sql: inout SQLBuilder) -> String? {
        guard let totals else { return nil }
        if let camera { return "SELECT coalesce(sum(n), 0) FROM \(totals) WHERE camera_id = \(sql.bind(camera))" }
        return "SELECT coalesce(sum(n), 0) FROM \(totals)"
    }
}

/// Runs a keyset (or deprecated offset) page of `spec` with the conditions in `filters`, and
/// writes the seeds' envelope.
///
/// The page and the exact `count` come from one statement, so they share a snapshot. `count`
/// is `countSQL` when the caller has a cheaper equivalent (a totals table), else `count(*)`
/// over the same conditions. Cost per page does not grow with depth: the cursor turns into an
/// index range on `(time, id)` (scanned backwards).
func listPage(
    _ spec: ListSpec,
    item: String,
    filters: SQLBuilder,
    countSQL: String? = nil,
    page: PageRequest,
    client: PostgresClient,
    logger: Logger
) async throws -> Response {
    var sql = filters
    let time = "t.\(spec.timeColumn)"
    var keyset = ""
    if let cursor = page.cursor {
        let id: String =
            switch cursor.id {
            case .integer(let value): sql.bind(value)
            case .text(let value): sql.bind(value)
            }
        keyset = " AND (\(time), t.id) < (\(sql.bind(cursor.createdAt))::timestamptz, \(id))"
    }
    let limit = sql.bind(page.limit + 1)
    let count = countSQL ?? "SELECT count(*) FROM \(spec.table) t WHERE \(spec.visible) AND \(filters.conjunction)"
    // The page's rows. With an offset, the skipped rows are found by id alone (an index-only
    // scan where the filters allow) and only the page's rows are rendered; it still costs
    // O(offset), which is why offset paging is deprecated.
    let pageRows: String
    if page.cursor == nil && page.offset > 0 {
        pageRows = """
            (SELECT t.id FROM \(spec.table) t WHERE \(spec.visible) AND \(filters.conjunction)
             ORDER BY \(time) DESC, t.id DESC LIMIT \(limit) OFFSET \(sql.bind(page.offset))) AS skipped
            JOIN \(spec.table) t ON t.id = skipped.id
            """
    } else {
        pageRows = """
            (SELECT * FROM \(spec.table) t WHERE \(spec.visible) AND \(filters.conjunction)\(keyset)
             ORDER BY \(time) DESC, t.id DESC LIMIT \(limit)) AS t
            """
    }
    let statement = """
        SELECT c.total::bigint, p.item, p.ts, p.id
        FROM (\(count)) AS c(total)
        LEFT JOIN LATERAL (
            SELECT \(item) AS item, vigil_ts(\(time)) AS ts, t.id::text AS id, \(time) AS sort_time, t.id AS sort_id
            FROM \(pageRows)
        ) p ON true
        ORDER BY p.sort_time DESC, p.sort_id DESC
        """
    var total: Int64 = 0
    var items: [(item: String, ts: String, id: String)] = []
    let rows = try await client.guardedQuery(sql.query(statement), logger: logger)
    for try await (rowTotal, item, ts, id) in rows.decode((Int64, String?, String?, String?).self) {
        total = rowTotal
        if let item, let ts, let id { items.append((item, ts, id)) }
    }
    let hasMore = items.count > page.limit
    if hasMore { items.removeLast() }
    let nextCursor =
        hasMore
        ? items.last.map { last in
            Cursor(id: spec.idIsInteger ? .integer(Int64(last.id) ?? 0) : .text(last.id), createdAt: last.ts).encoded
        } : nil

    var body = JSONWriter()
    body.object { object in
        object.array(spec.key) { array in for entry in items { array.raw(json: entry.item) } }
        object.field("count", total)
        object.field("limit", page.limit)
        object.field("offset", page.offset)
        object.field("next_cursor", nextCursor)
        object.field("has_more", hasMore)
        object.field("deprecation_warning", page.isDeprecatedOffset ? PageRequest.deprecationWarning : nil)
    }
    var headers = HTTPFields()
    if page.isDeprecatedOffset { headers[HTTPField.Name("Deprecation")!] = "true" }
    return body.response(headers: headers)
}

/// The one row the statement `build` writes returns, rendered as JSON by PostgreSQL, or a 404
/// with `notFound`.
func itemResponse(
    notFound: String, client: PostgresClient, logger: Logger, _ build: (inout SQLBuilder) -> String
) async throws -> Response {
    guard let item = try await itemJSON(client: client, logger: logger, build) else {
        throw APIError.notFound(notFound)
    }
    return jsonResponse(item)
}

/// The JSON text of the one row the statement `build` writes returns (nil: no row).
func itemJSON(
    client: PostgresClient, logger: Logger, _ build: (inout SQLBuilder) -> String
) async throws -> String? {
    var sql = SQLBuilder()
    let statement = build(&sql)
    let rows = try await client.guardedQuery(sql.query(statement), logger: logger)
    for try await item in rows.decode(String.self) { return item }
    return nil
}

/// A 200 with `json` (already JSON text) as its body.
func jsonResponse(_ json: String, headers: HTTPFields = [:]) -> Response {
    var body = JSONWriter()
    body.raw(json: json)
    return body.response(headers: headers)
}
