import Foundation

/// A private, throwaway `redis-server` (no persistence), for tests that stop and restart Redis
/// without disturbing the shared one of `tools/stack`.
public struct TestRedisServer: Sendable {
    private let process = Process()

    public init(port: Int) throws {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        guard
            let executable = paths.map({ "\($0)/redis-server" }).first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { throw TestRedisServerError.notFound }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", FileManager.default.temporaryDirectory.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    /// Kills the server like a crash would. SIGKILL because a child spawned from a dispatch
    /// thread inherits its blocked signals, SIGTERM included; polling because `waitUntilExit()`
    /// spins on a thread without a run loop.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
    }

    /// Freezes the server: it still accepts connections but answers nothing.
    public func pause() { kill(process.processIdentifier, SIGSTOP) }

    public func resume() { kill(process.processIdentifier, SIGCONT) }

    /// A TCP port nothing listens on (it was free a moment ago).
    public static func freePort() -> Int {
        #if os(Linux)
        let socket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let socket = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        precondition(socket >= 0, "socket() failed")
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
            }
        }
        precondition(bound, "bind() failed")
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public enum TestRedisServerError: Error {
    case notFound
}
