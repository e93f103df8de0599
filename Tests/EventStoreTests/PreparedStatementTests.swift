import EventStore
import Foundation
import PostgresNIO
import Testing
import VigilTesting

/// Statements run as named prepared statements (``PreparedStatements``): parsed once per
/// connection, right whatever the first call bound, and never stuck on a failed preparation.
@Suite struct PreparedStatementTests {
    /// The prepared statements of `connection`'s session whose text contains `marker` (a literal
    /// in the statement's SQL).
    private static func prepared(_ marker: String, on connection: PostgresConnection) async throws -> [String] {
        let rows = try await connection.query(
            "SELECT name FROM pg_prepared_statements WHERE strpos(statement, \(marker)) > 0 ORDER BY name",
            logger: TestDatabase.logger)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }

    /// Parsed once, planned at every call with its values (`plan_cache_mode =
    /// force_custom_plan`, ``PostgresSettings``): PostgreSQL's default would keep one generic
    /// plan after five calls, made for whatever size the tables had then.
    @Test func aStatementIsPreparedOncePerConnectionAndPlannedForEveryCall() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-prepared", events: [detection()])
            try await store.client.withOpenConnection { connection in
                for after in 0..<8 {
                    let rows = try await connection.preparedQuery(
                        "SELECT count(*)::int8 FROM events WHERE position > \(Int64(after)) AND 'prepared_once' <> ''",
                        logger: TestDatabase.logger)
                    var counts: [Int64] = []
                    for try await count in rows.decode(Int64.self) { counts.append(count) }
                    #expect(counts == [after == 0 ? 1 : 0], "after position \(after)")
                }
                let rows = try await connection.query(
                    """
                    SELECT name, generic_plans, custom_plans FROM pg_prepared_statements
                    WHERE strpos(statement, 'prepared_once') > 0
                    """, logger: TestDatabase.logger)
                var plans: [(String, Int64, Int64)] = []
                for try await row in rows.decode((String, Int64, Int64).self) { plans.append(row) }
                #expect(plans.count == 1, "\(plans)")
                #expect(plans.first?.0.hasPrefix("vigil_") == true, "\(plans)")
                #expect(plans.first?.1 == 0 && plans.first?.2 == 8, "generic and custom plans: \(plans)")
            }
        }
    }

    /// PostgresNIO fixes a parameter's type at the statement's first call, and declares a `nil`
    /// as of no type: a cast `NULL` first must not break the values after it, nor the reverse.
    @Test func aNullFirstThenValuesAndBackAnswerRight() async throws {
        try await TestDatabase.withStore { store in
            try await store.client.withOpenConnection { connection in
                let when = Date(timeIntervalSince1970: 1_800_000_000)
                for value in [nil, when, nil, when.addingTimeInterval(60)] as [Date?] {
                    let rows = try await connection.preparedQuery(
                        "SELECT extract(epoch FROM \(value)::timestamptz)::float8, 'null_then_value'",
                        logger: TestDatabase.logger)
                    var answer: Double?? = .none
                    for try await (epoch, _) in rows.decode((Double?, String).self) { answer = epoch }
                    #expect(answer == .some(value?.timeIntervalSince1970), "\(String(describing: value))")
                }
            }
        }
    }

    /// PostgresNIO keeps a failed preparation for good on its connection (every later call gets
    /// the same error without asking the server). One prepared inside a failed transaction
    /// fails; once the transaction is over the statement must work on that same connection.
    @Test func aPreparationThatFailedInAnAbortedTransactionIsPreparedAgain() async throws {
        try await TestDatabase.withStore { store in
            try await store.client.withOpenConnection { connection in
                let logger = TestDatabase.logger
                let statement: PostgresQuery = "SELECT count(*)::int8 FROM events WHERE 'after_abort' IS NOT NULL"
                try await connection.query("BEGIN", logger: logger)
                await #expect(throws: (any Error).self) {
                    try await connection.query("SELECT 1 / 0", logger: logger)
                }
                await #expect(throws: (any Error).self) {
                    try await connection.preparedQuery(statement, logger: logger)
                }
                try await connection.query("ROLLBACK", logger: logger)
                let rows = try await connection.preparedQuery(statement, logger: logger)
                var count: Int64 = -1
                for try await value in rows.decode(Int64.self) { count = value }
                #expect(count == 0)
            }
        }
    }

    /// An error of the statement's execution (a constraint) says nothing about its
    /// preparation: the statement keeps its name.
    @Test func anExecutionErrorKeepsTheStatementsName() async throws {
        try await TestDatabase.withStore { store in
            try await store.client.withOpenConnection { connection in
                let logger = TestDatabase.logger
                try await connection.query("CREATE TEMP TABLE once (id int PRIMARY KEY)", logger: logger)
                func insert() async throws {
                    try await connection.preparedQuery(
                        "INSERT INTO once SELECT 1 WHERE 'keeps_name' IS NOT NULL", logger: logger)
                }
                try await insert()
                await #expect(throws: PSQLError.self) { try await insert() }
                await #expect(throws: PSQLError.self) { try await insert() }
                #expect(try await Self.prepared("keeps_name", on: connection).count == 1)
            }
        }
    }
}
