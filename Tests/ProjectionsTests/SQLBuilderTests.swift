import Foundation
import Testing

@testable import Projections

@Suite("SQL builder")
struct SQLBuilderTests {
    @Test("inlined writes each bound value where its placeholder stands, $10 not read as $1")
    func inlined() throws {
        var sql = SQLBuilder()
        let placeholders = [
            sql.bind("front_door"), sql.bind("it's"), sql.bind(101), sql.bind(Int64(-7)), sql.bind(true),
            sql.bind(0.5), sql.bind(Date(timeIntervalSince1970: 1_700_000_000.25)), sql.bind("a"), sql.bind("b"),
            sql.bind("ten"),
        ]
        #expect(placeholders == (1...10).map { "$\($0)" })
        let statement = "SELECT \(placeholders.joined(separator: ", ")), '$5' AS text, $0, $11"
        #expect(
            sql.inlined(statement)
                == "SELECT 'front_door', 'it''s', 101, -7, true, 0.5, '2023-11-14T22:13:20.250Z', 'a', 'b', 'ten', "
                + "'$5' AS text, $0, $11")
    }

    @Test("a value without a literal form here: no statement rather than a wrong one")
    func unknownType() {
        var sql = SQLBuilder()
        let placeholder = sql.bind(UUID())
        #expect(sql.inlined("SELECT \(placeholder)") == nil)
    }
}
