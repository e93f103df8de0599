import ArgumentParser
import EventStore
import Foundation
import Logging
import Projections

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Inspect the projections.",
        subcommands: [Status.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checkpoint, lag and state of every projection."
        )

        func run() async throws {
            let logger = Vigil.bootstrapLogging()
            let settings = try PostgresSettings.fromEnvironment()
            try await requireMigrated(settings, logger: logger)
            let statuses = try await settings.withRunningClient(logger: logger) { client in
                try await EventStore(client: client, logger: logger).projectionStatuses()
            }
            guard !statuses.isEmpty else {
                print("no projections have run on \(settings.database) yet")
                return
            }
            print(
                "name".padding(toLength: 24, withPad: " ", startingAt: 0)
                    + "state     lag events  lag s     applied  last error")
            for status in statuses {
                print(
                    status.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + status.state.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(format: "%10d %7.1f %11d  ", status.lagEvents, status.lagSeconds, status.eventsApplied)
                        + (status.lastError ?? "-")
                )
                if let rebuild = status.rebuild {
                    print(
                        "  rebuilding generation \(rebuild.generation): "
                            + String(format: "%.1f%%", rebuild.progress * 100)
                            + (rebuild.estimatedSecondsLeft.map { String(format: ", about %.0f s left", $0) } ?? "")
                    )
                }
            }
        }
    }
}
