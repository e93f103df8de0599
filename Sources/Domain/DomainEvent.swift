import Foundation

/// A fact Vigil records in the log.
///
/// Its JSON (snake_case keys spelled out in `CodingKeys`, so free-form objects inside keep
/// their keys; ISO 8601 UTC timestamps with milliseconds) is the `data` of the
/// stored event and the published contract for anyone who reads the log: each type has a
/// JSON Schema in `schemas/events/<type>.v<schemaVersion>.json`. A change of shape is a new
/// schema version, never a rewrite of stored events.
public protocol DomainEvent: Codable, Sendable, Hashable {
    static var type: String { get }
    static var schemaVersion: Int32 { get }
    /// The stream the event is appended to.
    var stream: String { get }
    /// The event's `data` as JSON text (``EventCoding/encoder``'s, or the same bytes written
    /// by hand).
    func encodedData() throws -> String
}

extension DomainEvent {
    public static var schemaVersion: Int32 { 1 }

    public func encodedData() throws -> String { try EventCoding.encodedByFoundation(self) }

    /// Decodes stored `data` (JSON text) of this type.
    public static func decode(_ data: String) throws -> Self {
        try EventCoding.decoder.decode(Self.self, from: Data(data.utf8))
    }
}

/// The last digit of a written time.
public enum TimePrecision: Sendable {
    case milliseconds, microseconds
}

/// The encoder and decoder of event payloads: one of each for the process (Foundation's coders
/// are safe to share between threads, and making one cost a quarter of encoding a detection).
/// Shared, so never change their options: make a coder of your own for another format.
public enum EventCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }()

    /// `value` as ``encoder`` writes it, as text.
    public static func encodedByFoundation(_ value: some Encodable) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// The top-level fields of `value` as its payload encodes them, by name (the audit trail's
    /// old and new values of a definition an event carries whole).
    public static func fields(of value: some Encodable) -> [String: JSONValue] {
        guard let data = try? encoder.encode(value),
            case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: data)
        else { return [:] }
        return fields
    }

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTimestamp(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an ISO 8601 timestamp: \(text)")
            }
            return date
        }
        return decoder
    }()

    /// `2026-11-23T15:11:07.123Z`: UTC, whole milliseconds (a finer time is cut, not rounded);
    /// in `.microseconds`, whole microseconds (PostgreSQL's precision).
    ///
    /// A time parsed from this text gives this text back. Foundation's own fractional format
    /// does not: the `Double` of `.002` lies a hair below it and is cut to `.001`, so a payload
    /// decoded and written again would drift by a millisecond. The nudge (a thousandth of the
    /// last digit, or the `Double`'s own precision where that is coarser: years far from 1970)
    /// keeps such a time on its digit.
    public static func timestamp(_ date: Date, _ precision: TimePrecision = .milliseconds) -> String {
        let (scale, width) = precision == .microseconds ? (1_000_000.0, 6) : (1000.0, 3)
        let seconds = date.timeIntervalSince1970
        let nudge = max(0.001, seconds.magnitude.ulp * scale)
        let units = Int64((seconds * scale + nudge).rounded(.down))
        var (whole, fraction) = units.quotientAndRemainder(dividingBy: Int64(scale))
        if fraction < 0 { (whole, fraction) = (whole - 1, fraction + Int64(scale)) }
        // Outside years 1–9999 (nothing PostgreSQL takes): as Foundation writes it.
        let text =
            Timestamp.dateTime(secondsSince1970: whole)
            ?? String(Date(timeIntervalSince1970: Double(whole)).formatted(Date.ISO8601FormatStyle()).dropLast())
        let digits = String(fraction)
        return text + "." + String(repeating: "0", count: width - digits.count) + digits + "Z"
    }

    /// Parses an ISO 8601 timestamp with or without fractional seconds, with `Z` or an offset:
    /// ``Timestamp/parseDateTime(_:)`` (the proleptic Gregorian calendar, as PostgreSQL's and
    /// ``timestamp(_:_:)``'s), then Foundation's parser for anything it refuses. Foundation's
    /// calendar is Julian before October 1582: a time before then, read or written by it, moved
    /// by days against PostgreSQL's.
    public static func parseTimestamp(_ text: String) -> Date? {
        if let date = Timestamp.parseDateTime(text) { return date }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }
}

/// Any JSON value (for free-form payload fields such as a detection's `enrichment_data`).
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// Who caused an event and through what request: the `metadata` of every stored event, and
/// what the audit trail is projected from.
public struct EventMetadata: Codable, Sendable, Hashable {
    /// An API key's name, `system`, or a worker's name (`anonymous` until keys are required).
    public var actor: String
    public var requestId: String?
    public var clientAddress: String?
    public var userAgent: String?
    public var correlationId: String?
    public var causationId: String?
    /// Appended as history (a bulk import, demo data): reactors don't act on it, its effects
    /// are in the log already.
    public var imported: Bool?
    /// A fingerprint of the client input this event was made from, when the request carried an
    /// `Idempotency-Key`: a retry under the same key must carry the same input (the log writer
    /// refuses a different one instead of answering with the first).
    public var requestDigest: String?

    public init(
        actor: String, requestId: String? = nil, clientAddress: String? = nil, userAgent: String? = nil,
        correlationId: String? = nil, causationId: String? = nil, imported: Bool? = nil,
        requestDigest: String? = nil
    ) {
        self.actor = actor
        self.requestId = requestId
        self.clientAddress = clientAddress
        self.userAgent = userAgent
        self.correlationId = correlationId
        self.causationId = causationId
        self.imported = imported
        self.requestDigest = requestDigest
    }

    /// Whether stored `metadata` (JSON text) marks its event as imported history.
    public static func isImported(_ metadata: String) -> Bool {
        // Most metadata doesn't mention it: a plain byte search first (0.1 µs, where
        // Foundation's `contains` takes 2 µs and the standard library's `firstRange(of:)` 23).
        guard Self.mentions(metadata, "imported") else { return false }
        return (try? EventCoding.decoder.decode(EventMetadata.self, from: Data(metadata.utf8)))?.imported == true
    }

    /// Whether `word`'s bytes occur in `text`.
    static func mentions(_ text: String, _ word: StaticString) -> Bool {
        var text = text
        return text.withUTF8 { text in
            let word = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard let first = word.first, let start = text.baseAddress else { return word.isEmpty }
            guard text.count >= word.count else { return false }
            for offset in 0...(text.count - word.count)
            where text[offset] == first && memcmp(start + offset, word.baseAddress!, word.count) == 0 {
                return true
            }
            return false
        }
    }

    /// The metadata as JSON text: written by hand (``PayloadJSON``), the bytes
    /// ``EventCoding/encoder`` would write.
    public func encoded() throws -> String {
        var json = PayloadJSON()
        json.field("actor", actor)
        json.field("causation_id", causationId)
        json.field("client_address", clientAddress)
        json.field("correlation_id", correlationId)
        json.field("imported", imported)
        json.field("request_digest", requestDigest)
        json.field("request_id", requestId)
        json.field("user_agent", userAgent)
        return json.finish()
    }

    enum CodingKeys: String, CodingKey {
        case actor
        case requestId = "request_id"
        case clientAddress = "client_address"
        case userAgent = "user_agent"
        case correlationId = "correlation_id"
        case causationId = "causation_id"
        case imported
        case requestDigest = "request_digest"
    }
}
