import EventStore
import Foundation
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// What a phase cost in CPU time, read from `/proc` (Linux): the server (this process, which
/// hosts it) and PostgreSQL (every process of its cluster). On a shared machine a phase's
/// requests per second move with the neighbours; the CPU each request took moves less, and says
/// which side a change saved on.
struct CPUMeter {
    /// The cluster's postmaster; nil when PostgreSQL is not on this machine (or `/proc` can't be
    /// read): then only the server's side is measured.
    let postmaster: Int32?

    struct Sample {
        var server: Duration?
        var postgres: Duration?
    }

    /// CPU time per request of a phase, each side nil where it could not be read.
    struct Cost {
        var server: Duration?
        var postgres: Duration?

        /// `server 123 µs, PostgreSQL 45 µs` (the sides that were read).
        var text: String {
            [server.map { "server \(Self.micros($0)) µs" }, postgres.map { "PostgreSQL \(Self.micros($0)) µs" }]
                .compactMap { $0 }.joined(separator: ", ")
        }

        static func micros(_ duration: Duration) -> Int { Int((duration.seconds * 1_000_000).rounded()) }
    }

    /// The meter for the cluster `store` talks to: its postmaster is the parent of the backend
    /// that answers.
    static func forCluster(of store: EventStore) async -> CPUMeter {
        let answer = try? await store.client.guardedQuery("SELECT pg_backend_pid()", logger: store.logger)
        let backend = try? answer?.rows.first?.decode(Int32.self)
        return CPUMeter(postmaster: backend.flatMap { ProcessStat(pid: $0)?.parent })
    }

    func sample() -> Sample {
        Sample(server: ProcessStat(pid: getpid())?.own, postgres: postmaster.flatMap(Self.cluster))
    }

    /// The CPU spent since `start`, per request of `requests`.
    func cost(since start: Sample, requests: Int) -> Cost {
        let now = sample()
        let count = Double(max(1, requests))
        func per(_ from: Duration?, _ to: Duration?) -> Duration? {
            guard let from, let to else { return nil }
            return (to - from) / count
        }
        return Cost(server: per(start.server, now.server), postgres: per(start.postgres, now.postgres))
    }

    /// The postmaster's own time, its reaped children's (a backend that exits during a phase is
    /// counted there), and its living children's.
    private static func cluster(_ postmaster: Int32) -> Duration? {
        guard let root = ProcessStat(pid: postmaster) else { return nil }
        var total = root.own + root.reapedChildren
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), pid != postmaster, let stat = ProcessStat(pid: pid),
                stat.parent == postmaster
            else { continue }
            total += stat.own
        }
        return total
    }
}

/// The fields of `/proc/PID/stat` a ``CPUMeter`` reads.
struct ProcessStat {
    var parent: Int32
    /// User and system time of the process itself.
    var own: Duration
    /// User and system time of its children that have exited and been waited for.
    var reapedChildren: Duration

    /// The clock ticks `/proc` counts in, per second.
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After the command's name (which may hold spaces and parentheses): field 3 onwards.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 14, let parent = Int32(fields[1]), let utime = Int64(fields[11]),
            let stime = Int64(fields[12]), let cutime = Int64(fields[13]), let cstime = Int64(fields[14])
        else { return nil }
        func time(_ count: Int64) -> Duration { .seconds(Double(count) / Self.ticksPerSecond) }
        self.parent = parent
        own = time(utime + stime)
        reapedChildren = time(cutime + cstime)
    }
}
