import Logging
import PostgresNIO
import Synchronization

/// Integer ids from a sequence of the store schema (`schemas/store/0003_read_support.sql`):
/// the writer takes them and stores them in the events it appends, so a rebuild reproduces
/// them. The one allocator for every writer (detection ingest, the batch aggregator).
public struct IDSequence: Sendable, Hashable {
    public let name: String

    public static let detections = IDSequence(name: "detection_ids")
    public static let securityEvents = IDSequence(name: "security_event_ids")
    /// Every sequence of the store schema whose ids events carry (an archive keeps their values).
    public static let all: [IDSequence] = [.detections, .securityEvents]

    public init(name: String) { self.name = name }

    /// `count` new ids, ascending, through the pool.
    public func take(_ count: Int, from client: PostgresClient, logger: Logger) async throws -> [Int64] {
        guard count > 0 else { return [] }
        return try await Self.ids(client.guardedQuery(statement(count), logger: logger))
    }

    /// `count` new ids, ascending, on `connection` (inside the caller's transaction; a
    /// sequence is not rolled back, so ids of a failed transaction are skipped, never reused).
    public func take(_ count: Int, on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        guard count > 0 else { return [] }
        return try await Self.ids(connection.query(statement(count), logger: logger))
    }

    private func statement(_ count: Int) -> PostgresQuery {
        "SELECT nextval(\(name)::regclass) AS id FROM generate_series(1, \(count)) ORDER BY id"
    }

    private static func ids<Rows: AsyncSequence>(_ rows: Rows) async throws -> [Int64]
    where Rows.Element == PostgresRow {
        var ids: [Int64] = []
        for try await row in rows { ids.append(try row.decode(Int64.self)) }
        return ids
    }
}

extension EventStore {
    /// `count` new ids from `sequence`, ascending.
    public func takeIDs(_ count: Int, from sequence: IDSequence) async throws -> [Int64] {
        try await sequence.take(count, from: client, logger: logger)
    }
}

/// Ids of one sequence handed out from blocks this process reserves: one `nextval` round trip
/// per `blockSize` ids instead of one per id (single detections arrive one per request).
///
/// Ids stay unique (a sequence never gives an id twice) and ascending within a block; ids of
/// a block not used up when the process stops are skipped, never reused, as a sequence
/// skips the ids of rolled-back transactions.
public final class IDBlocks: Sendable {
    public let sequence: IDSequence
    public let blockSize: Int
    private let store: EventStore
    /// Reserved and not handed out yet, the next one last.
    private let reserved = Mutex<[Int64]>([])

    public init(_ sequence: IDSequence, store: EventStore, blockSize: Int = 64) {
        self.sequence = sequence
        self.store = store
        self.blockSize = max(1, blockSize)
    }

    /// A new id.
    public func next() async throws -> Int64 {
        if let id = reserved.withLock({ $0.popLast() }) { return id }
        let block = try await store.takeIDs(blockSize, from: sequence)
        reserved.withLock { reserved in
            // Another caller may have reserved a block meanwhile: both are kept, in order.
            reserved = (reserved + block.dropFirst()).sorted(by: >)
        }
        return block[0]
    }
}
