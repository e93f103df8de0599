/// A position in the global log, as readers see it.
///
/// The log is read in `(transactionID, position)` order (see `schemas/store/0001_events.sql`),
/// so a checkpoint is that pair. Clients see it as one opaque token of 32 hex digits whose
/// lexicographic order is the log order, so tokens can be compared and stored as strings.
public struct Checkpoint: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The PostgreSQL transaction (`xid8`) that wrote the event.
    public let transactionID: UInt64
    /// The event's `position` (identity column) in the events table.
    public let position: Int64

    /// Before the first event: reading after `start` reads the whole log.
    public static let start = Checkpoint(transactionID: 0, position: 0)

    public init(transactionID: UInt64, position: Int64) {
        self.transactionID = transactionID
        self.position = position
    }

    /// A checkpoint from a row: `tx_id::text` and `position`.
    public init(transactionText: String, position: Int64) {
        self.init(transactionID: UInt64(transactionText) ?? 0, position: position)
    }

    /// Parses a token made by ``token``.
    public init(token: String) throws(CheckpointError) {
        let utf8 = Array(token.utf8)
        guard utf8.count == 32 else {
            throw .malformed("expected 32 hexadecimal digits, got \(utf8.count) characters")
        }
        guard let transaction = UInt64(String(decoding: utf8[0..<16], as: UTF8.self), radix: 16),
            let position = UInt64(String(decoding: utf8[16..<32], as: UTF8.self), radix: 16),
            utf8.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") })
        else {
            throw .malformed("not a hexadecimal token")
        }
        guard position <= UInt64(Int64.max) else { throw .malformed("position out of range") }
        self.init(transactionID: transaction, position: Int64(position))
    }

    /// The opaque, ordered form handed to clients.
    public var token: String {
        Self.hex(transactionID) + Self.hex(UInt64(position))
    }

    public var description: String { token }

    public static func < (lhs: Checkpoint, rhs: Checkpoint) -> Bool {
        (lhs.transactionID, lhs.position) < (rhs.transactionID, rhs.position)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case malformed(String)

    public var description: String {
        switch self {
        case .malformed(let reason): reason
        }
    }
}
