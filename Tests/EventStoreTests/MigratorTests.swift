import EventStore
import Foundation
import PostgresNIO
import Testing
import VigilTesting

@Suite("Migrations")
struct MigratorTests {
    @Test("each migration applies once; one edited after it was applied is refused, and nothing after it runs")
    func editedMigrationIsRefused() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-migrations-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        @Sendable func write(_ file: String, _ sql: String) throws {
            try sql.write(to: directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        try await TestDatabase.withStore { store in
            let migrator = Migrator(directory: directory, scope: "test")
            try write("001_first.sql", "CREATE TABLE first_table (x int);")
            #expect(try await migrator.migrate(client: store.client, logger: TestDatabase.logger) == ["001_first"])
            #expect(try await migrator.migrate(client: store.client, logger: TestDatabase.logger).isEmpty)

            // Edited after it was applied, with a new one after it.
            try write("001_first.sql", "CREATE TABLE first_table (x int, y int);")
            try write("002_second.sql", "CREATE TABLE second_table (x int);")
            await #expect {
                try await migrator.migrate(client: store.client, logger: TestDatabase.logger)
            } throws: { error in
                guard case MigrationError.changedAfterApply(let scope, let version) = error else { return false }
                return scope == "test" && version == "001_first"
            }
            #expect(try await migrator.pending(client: store.client, logger: TestDatabase.logger) == ["002_second"])
            let tables = try await store.client.query(
                "SELECT count(*) FROM pg_tables WHERE tablename IN ('first_table', 'second_table')",
                logger: TestDatabase.logger
            ).decode(Int64.self).first { _ in true }
            #expect(tables == 1)

            // Put back as applied: the next one goes through.
            try write("001_first.sql", "CREATE TABLE first_table (x int);")
            #expect(try await migrator.migrate(client: store.client, logger: TestDatabase.logger) == ["002_second"])
        }
    }
}
