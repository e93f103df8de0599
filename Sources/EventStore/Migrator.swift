import Foundation
import Logging
import PostgresNIO

/// Applies the numbered `.sql` files of a directory in order, once each, recording them in
/// `schema_migrations` (with a checksum, so an edited migration is refused, not silently skipped).
public struct Migrator: Sendable {
    public struct Migration: Sendable, Hashable {
        public var version: String
        public var sql: String
        public var checksum: String
    }

    public let directory: URL
    /// Namespace of the recorded versions (`store`, later one per projection).
    public let scope: String

    public init(directory: URL, scope: String) {
        self.directory = directory
        self.scope = scope
    }

    /// The event store's own migrations, `schemas/store/`.
    public static func store(environment: [String: String] = ProcessInfo.processInfo.environment) -> Migrator {
        Migrator(directory: schemasDirectory(environment: environment).appendingPathComponent("store"), scope: "store")
    }

    /// `VIGIL_SCHEMA_DIR`, else `./schemas`, else the `schemas/` of the source tree this was built from.
    public static func schemasDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let configured = environment["VIGIL_SCHEMA_DIR"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        let local = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("schemas")
        if FileManager.default.fileExists(atPath: local.appendingPathComponent("store").path) { return local }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("schemas")
    }

    public func migrations() throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        return try files.map { file in
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            return Migration(version: String(file.dropLast(4)), sql: sql, checksum: Self.checksum(sql))
        }
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [String] {
        var applied: [String] = []
        for migration in try migrations() {
            let didApply = try await client.withConnection { connection in
                try await connection.inTransaction(logger: logger) { connection in
                    // One migrator at a time, whichever instance runs it.
                    try await connection.guardedQuery("SELECT pg_advisory_xact_lock(7146000001)", logger: logger)
                    try await Self.createTable(on: connection, logger: logger)
                    let recorded = try await connection.guardedQuery(
                        "SELECT checksum FROM schema_migrations WHERE scope = \(scope) AND version = \(migration.version)",
                        logger: logger
                    ).decode(String.self).first { _ in true }
                    if let recorded {
                        guard recorded == migration.checksum else {
                            throw MigrationError.changedAfterApply(scope: scope, version: migration.version)
                        }
                        return false
                    }
                    for statement in SQLScript.statements(in: migration.sql) {
                        try await connection.guardedQuery(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.guardedQuery(
                        """
                        INSERT INTO schema_migrations (scope, version, checksum)
                        VALUES (\(scope), \(migration.version), \(migration.checksum))
                        """,
                        logger: logger
                    )
                    return true
                }
            }
            if didApply {
                logger.info("applied migration", metadata: ["scope": "\(scope)", "version": "\(migration.version)"])
                applied.append(migration.version)
            }
        }
        return applied
    }

    /// Versions not applied yet (the server refuses to start while any is pending).
    public func pending(client: PostgresClient, logger: Logger) async throws -> [String] {
        let exists =
            try await client.guardedQuery(
                "SELECT to_regclass('schema_migrations') IS NOT NULL",
                logger: logger
            ).decode(Bool.self).first { _ in true } ?? false
        var recorded: Set<String> = []
        if exists {
            let rows = try await client.guardedQuery(
                "SELECT version FROM schema_migrations WHERE scope = \(scope)",
                logger: logger
            )
            for try await version in rows.decode(String.self) { recorded.insert(version) }
        }
        return try migrations().map(\.version).filter { !recorded.contains($0) }
    }

    private static func createTable(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.guardedQuery(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                scope text NOT NULL,
                version text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (scope, version)
            )
            """,
            logger: logger
        )
    }

    /// FNV-1a of the file's bytes: enough to notice an edit.
    static func checksum(_ text: String) -> String {
        String(fnv1a(text), radix: 16)
    }
}

public enum MigrationError: Error, CustomStringConvertible {
    case changedAfterApply(scope: String, version: String)

    public var description: String {
        switch self {
        case .changedAfterApply(let scope, let version):
            "migration \(scope)/\(version) was edited after it was applied; add a new migration instead"
        }
    }
}

/// 64-bit FNV-1a of a string's UTF-8 bytes: a stable hash for checksums and lock keys (not
/// for security).
public func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return hash
}
