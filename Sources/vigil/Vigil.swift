import ArgumentParser
import Benchmarks
import EventStore
import Foundation
import Logging

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Vigil: an event-sourced home-security intelligence backend.",
        subcommands: [
            Serve.self, Migrate.self, ProjectionsCommand.self, Export.self, Import.self, Demo.self, Simulate.self,
            Bench.self,
        ]
    )

    /// Logging is bootstrapped once, here, before any command runs, the benchmarks' commands
    /// (which live in their own module) included.
    static func main() async {
        let setting = ProcessInfo.processInfo.environment["VIGIL_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 }
        guard let level = setting.map({ Logger.Level(rawValue: $0) }) ?? .info else {
            // Once ignored silently (VIGIL_LOG_LEVEL=loud logged at info).
            FileHandle.standardError.write(
                Data(
                    "vigil: VIGIL_LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical\n".utf8)
            )
            Foundation.exit(2)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as DatabaseUnreachable {
            // Any command's, said the way the commands say their own failures.
            exit(withError: fail(error.description))
        } catch {
            exit(withError: error)
        }
    }

    /// The commands' logger.
    static var logger: Logger { Logger(label: "vigil") }
}

/// Prints to standard error and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
    return ExitCode(code)
}
