import Logging
import PostgresNIO
import Synchronization

/// Statements PostgreSQL parses and analyzes once per connection instead of on every call.
///
/// PostgresNIO sends a `PostgresQuery` as an unnamed statement: parsed, analyzed and planned
/// anew each time. Under single POSTs that was ≈ 17% of the machine against 8.7% executing
/// (docs/BENCHMARKS.md, "where a single POST's CPU goes"): the log reads of the tail and the
/// runners, the runners' statements and the appends' all run thousands of times a second.
/// A named statement is parsed once per connection. It is still planned at every call, with
/// that call's values: Vigil's sessions run with `plan_cache_mode = force_custom_plan`
/// (``PostgresSettings``), because a generic plan made while a table was small outlives its
/// fitness once the table is big.
///
/// PostgresNIO prepares a ``PostgresPreparedStatement`` on a connection the first time it runs
/// there, by name, then only binds and executes it. That protocol wants the name and the SQL as
/// static properties of a type; ``DynamicStatement`` reads them from a task-local set around
/// the call, so one type serves every statement.
///
/// What may go through here: statements whose text is fixed in code, every value bound (no
/// `unescaped:` value that changes from call to call), and every parameter that can be `NULL`
/// cast in the SQL (`\(value)::timestamptz`). A parameter's type is fixed at the first call on
/// a connection, and PostgresNIO declares a `nil` as of no type: an uncast `NULL` on the first
/// call would let PostgreSQL infer a type the later values are not encoded in.
///
/// Process-wide on purpose, like ``ClosedConnectionWatch``: a name must mean the same SQL on
/// every connection of the process, whichever store or runner prepared it there. Bounded
/// (``limit`` texts); beyond that, statements run unnamed as before.
public final class PreparedStatements: Sendable {
    static let shared = PreparedStatements()

    /// How many distinct statement texts get a name.
    static let limit = 256

    private struct Entry {
        var index: Int
        /// Bumped when a call fails in a way that may have come from preparing it: PostgresNIO
        /// keeps a failed preparation for good (every later call on that connection gets the
        /// same error without asking the server), so the statement is prepared again under a
        /// new name.
        var epoch: Int
    }

    private let names = Mutex([String: Entry]())

    /// The name `sql` runs under, or nil when the registry is full.
    func name(for sql: String) -> String? {
        names.withLock { names in
            if let entry = names[sql] { return "vigil_\(entry.index)_\(entry.epoch)" }
            guard names.count < Self.limit else { return nil }
            names[sql] = Entry(index: names.count, epoch: 0)
            return "vigil_\(names.count - 1)_0"
        }
    }

    /// After `error` from running `sql` prepared: a new name for it when PostgreSQL refused it
    /// for a reason that may have come from its preparation (a failed transaction, a lock or
    /// statement timeout, a changed table). Not for an error a prepared statement's execution
    /// raises (a constraint, a data error, a raised exception, a serialization failure), nor
    /// for a connection that closed (its prepared statements are gone with it): each new name
    /// leaves the old one prepared on every connection that had it, until that connection
    /// closes.
    func failed(_ sql: String, _ error: any Error) {
        guard let state = (error as? PSQLError)?.serverInfo?[.sqlState],
            !["22", "23", "40", "P0"].contains(state.prefix(2))
        else { return }
        names.withLock { $0[sql]?.epoch += 1 }
    }
}

/// The one ``PostgresPreparedStatement`` type: its name and SQL are those of the call under way
/// (``PreparedStatements``).
struct DynamicStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow

    struct Current: Sendable {
        var name: String
        var sql: String
    }

    @TaskLocal static var current: Current?

    static var name: String { current!.name }
    static var sql: String { current!.sql }

    let bindings: PostgresBindings

    func makeBindings() -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) -> PostgresRow { row }
}

extension PostgresConnection {
    /// `query` as a named prepared statement (see ``PreparedStatements`` for which statements
    /// may), read to the end. Runs it unnamed when too many texts have names already.
    public func preparedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        let registry = PreparedStatements.shared
        guard let name = registry.name(for: query.sql) else {
            return CollectedRows(rows: try await self.query(query, logger: logger).collect())
        }
        do {
            return try await DynamicStatement.$current.withValue(.init(name: name, sql: query.sql)) {
                var rows: [PostgresRow] = []
                for try await row in try await execute(DynamicStatement(bindings: query.binds), logger: logger) {
                    rows.append(row)
                }
                return CollectedRows(rows: rows)
            }
        } catch {
            registry.failed(query.sql, error)
            throw error
        }
    }

    /// ``preparedQuery(_:logger:)``, ended by ``PostgresConnectionClosed`` when the connection
    /// closes first (see ``whileOpen(_:)``).
    @discardableResult
    public func guardedPreparedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        let connection = self
        return try await whileOpen { try await connection.preparedQuery(query, logger: logger) }
    }
}
