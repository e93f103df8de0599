import EventStore
import PostgresNIO

/// The sort key of a list's row: its time (as PostgreSQL rendered it, `vigil_ts`) and its id.
/// A page starts after one (keyset paging); the API encodes it as the client's cursor.
public struct ListPosition: Sendable, Equatable {
    public enum ID: Sendable, Equatable {
        case integer(Int64)
        case text(String)
    }

    public var time: String
    public var id: ID

    public init(time: String, id: ID) {
        self.time = time
        self.id = id
    }
}

/// Which page of a list: the first `limit` rows after `after` (keyset), or, deprecated, after
/// skipping `offset` rows.
public struct PageBounds: Sendable {
    public var limit: Int
    public var offset: Int
    public var after: ListPosition?

    public init(limit: Int, offset: Int = 0, after: ListPosition? = nil) {
        self.limit = limit
        self.offset = offset
        self.after = after
    }
}

/// A page of a list: its items as JSON text (rendered by PostgreSQL), the exact count of the
/// filtered list, and where the next page starts.
public struct ListPage: Sendable {
    public var total: Int64
    public var items: [String]
    /// The position of the last item, when more rows follow it.
    public var next: ListPosition?

    public var hasMore: Bool { next != nil }
}

/// One of the paginated lists: its view, its order, which rows it shows, and how an item is
/// rendered.
public struct ListSpec: Sendable {
    /// The read model (a `public` view).
    public var table: String
    /// The sort timestamp (descending, then `id` descending): the position's `time`.
    public var timeColumn: String
    public var idIsInteger: Bool
    /// Which rows a list shows at all (soft-deleted ones don't).
    public var visible: String
    /// A table of visible rows per camera (`camera_id`, `n`), if the read model keeps one.
    public var totals: String?

    public init(table: String, timeColumn: String, idIsInteger: Bool, visible: String, totals: String? = nil) {
        self.table = table
        self.timeColumn = timeColumn
        self.idIsInteger = idIsInteger
        self.visible = visible
        self.totals = totals
    }

    /// `count` from the totals table, for a list filtered by the camera at most (nil: no
    /// totals table).
    func totalsCount(camera: String?, _ sql: inout SQLBuilder) -> String? {
        guard let totals else { return nil }
        if let camera { return "SELECT coalesce(sum(n), 0) FROM \(totals) WHERE camera_id = \(sql.bind(camera))" }
        return "SELECT coalesce(sum(n), 0) FROM \(totals)"
    }

    /// A keyset (or deprecated offset) page of this list with the conditions in `filters`,
    /// each row rendered by `item` (SQL over the row, alias `t`).
    ///
    /// The page and the exact `count` come from one statement, so they share a snapshot.
    /// `count` is `countSQL` when the caller has a cheaper equivalent (a totals table), else
    /// `count(*)` over the same conditions. Cost per page does not grow with depth: the
    /// position turns into an index range on `(time, id)` (scanned backwards).
    func page(
        item: String, filters: SQLBuilder, countSQL: String? = nil, bounds: PageBounds, in database: ReadDatabase
    ) async throws -> ListPage {
        let (sql, statement) = query(item: item, filters: filters, countSQL: countSQL, bounds: bounds)
        return try await run(sql, statement, bounds: bounds, in: database)
    }

    /// The statement of ``page(item:filters:countSQL:bounds:in:)``, and its binds.
    func query(
        item: String, filters: SQLBuilder, countSQL: String? = nil, bounds: PageBounds
    ) -> (SQLBuilder, String) {
        var sql = filters
        let time = "t.\(timeColumn)"
        var keyset = ""
        if let after = bounds.after {
            let id: String =
                switch after.id {
                case .integer(let value): sql.bind(value)
                case .text(let value): sql.bind(value)
                }
            keyset = " AND (\(time), t.id) < (\(sql.bind(after.time))::timestamptz, \(id))"
        }
        let limit = sql.bind(bounds.limit + 1)
        let count = countSQL ?? "SELECT count(*) FROM \(table) t WHERE \(visible) AND \(filters.conjunction)"
        // The page's rows. With an offset, the skipped rows are found by id alone (an index-only
        // scan where the filters allow) and only the page's rows are rendered; it still costs
        // O(offset), which is why offset paging is deprecated.
        let pageRows: String
        if bounds.after == nil && bounds.offset > 0 {
            pageRows = """
                (SELECT t.id FROM \(table) t WHERE \(visible) AND \(filters.conjunction)
                 ORDER BY \(time) DESC, t.id DESC LIMIT \(limit) OFFSET \(sql.bind(bounds.offset))) AS skipped
                JOIN \(table) t ON t.id = skipped.id
                """
        } else {
            pageRows = """
                (SELECT * FROM \(table) t WHERE \(visible) AND \(filters.conjunction)\(keyset)
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
        return (sql, statement)
    }

    /// Runs a statement of ``query(item:filters:countSQL:bounds:)``: the page.
    func run(
        _ sql: SQLBuilder, _ statement: String, bounds: PageBounds, in database: ReadDatabase
    ) async throws
        -> ListPage
    {
        var total: Int64 = 0
        var items: [String] = []
        var positions: [(ts: String, id: String)] = []
        let rows = try await database.rows(sql, statement)
        for try await (rowTotal, item, ts, id) in rows.decode((Int64, String?, String?, String?).self) {
            total = rowTotal
            if let item, let ts, let id {
                items.append(item)
                positions.append((ts, id))
            }
        }
        var next: ListPosition?
        if items.count > bounds.limit {
            items.removeLast()
            positions.removeLast()
            next = positions.last.map { last in
                ListPosition(time: last.ts, id: idIsInteger ? .integer(Int64(last.id) ?? 0) : .text(last.id))
            }
        }
        return ListPage(total: total, items: items, next: next)
    }
}
