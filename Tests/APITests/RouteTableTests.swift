import Domain
import EventStore
import Foundation
import HTTPTypes
import Redis
import Testing

@testable import API

/// `docs/API.md`'s route table is the router's: no route undocumented, none documented that
/// isn't served.
@Suite struct RouteTableTests {
    /// The rows of the table under `## Routes`: `| GET | /api/events |`.
    static func documentedRoutes() throws -> [String] { try documentedRows().map(\.route) }

    /// The rows of the table under `## Routes`: the route and its *Needs* cell.
    static func documentedRows() throws -> [(route: String, needs: String)] {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/API.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        guard let start = text.range(of: "\n## Routes\n") else { return [] }
        let section = text[start.upperBound...].components(separatedBy: "\n## ")[0]
        return section.split(separator: "\n").compactMap { line -> (String, String)? in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4, ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(cells[0]) else { return nil }
            return ("\(cells[0]) \(cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")))", cells[3])
        }.sorted { $0.0 < $1.0 }
    }

    @Test("each documented route's Needs column is what the server's access table says")
    func theDocumentedAccessIsTheServedAccess() throws {
        let rows = try Self.documentedRows()
        #expect(rows.count > 30)
        for (route, needs) in rows {
            let parts = route.split(separator: " ", maxSplits: 1)
            let access = AccessPolicy.access(.init(String(parts[0]))!, String(parts[1]))
            let expected: String =
                switch access {
                case .open: "—"
                case .needs(let permission): permission.rawValue
                }
            #expect(needs == expected, "\(route)")
        }
    }

    @Test func theDocumentedRoutesAreTheServedRoutes() throws {
        var configuration = ServerConfiguration(postgres: try PostgresSettings.fromEnvironment())
        // With Redis, as deployed (no route depends on it today, but one may).
        configuration.redis = RedisSettings(host: "127.0.0.1", port: 1)
        let served = registeredRoutes(configuration, logger: testLogger)
        let documented = try Self.documentedRoutes()
        #expect(served.count > 30)
        #expect(Set(served).subtracting(documented).sorted() == [], "served but not in docs/API.md")
        #expect(Set(documented).subtracting(served).sorted() == [], "in docs/API.md but not served")
        #expect(documented == served.sorted(), "each route once")
    }
}
