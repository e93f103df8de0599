import ArgumentParser
import EventStore
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the event store's migrations (schemas/store/*.sql) that are not applied yet."
    )

    func run() async throws {
        let logger = Vigil.logger
        let settings = try PostgresSettings.fromEnvironment()
        let migrator = Migrator.store()
        let applied = try await settings.withRunningClient(logger: logger) { client in
            try await migrator.migrate(client: client, logger: logger)
        }
        let target = "\(settings.database) on \(settings.host):\(settings.port)"
        if applied.isEmpty {
            print("vigil migrate: \(target) is up to date")
        } else {
            print("vigil migrate: applied \(applied.joined(separator: ", ")) to \(target)")
        }
    }
}
