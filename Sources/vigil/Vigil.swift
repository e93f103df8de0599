import ArgumentParser
import Benchmarks
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
        let level =
            ProcessInfo.processInfo.environment["VIGIL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        await main(nil)
    }

    /// The commands' logger.
    static var logger: Logger { Logger(label: "vigil") }
}

/// Prints to standard error and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
    return ExitCode(code)
}
