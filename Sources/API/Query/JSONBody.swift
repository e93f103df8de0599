import Crypto
import Domain
import Foundation
import Hummingbird

/// Reads a JSON request body field by field with FastAPI's (pydantic's) validation errors,
/// collecting every problem before failing, as the original does.
///
/// One policy for every body: a field the route doesn't read is refused (`extra_forbidden`,
/// "Extra inputs are not permitted"), so a misspelt or unsupported field is never silently
/// dropped. A route that takes fields it ignores on purpose (values a client sends back from
/// what it read) names them with ``ignore(_:)``.
struct JSONBody {
    private let object: [String: JSONValue]
    /// Where this object is (`["body"]`, or `["body", "3"]` for an array's item): the start of
    /// each issue's `loc`.
    private let location: [String]
    private var found: [ValidationError.Issue] = []
    /// The fields the route has read (or ignores).
    private var known: Set<String> = []

    /// Every problem so far, with the fields nobody read (read them all first).
    var issues: [ValidationError.Issue] {
        found
            + object.keys.filter { !known.contains($0) }.sorted().map {
                .init(location: location + [$0], message: "Extra inputs are not permitted", type: "extra_forbidden")
            }
    }

    /// Fields the route accepts and ignores.
    mutating func ignore(_ names: some Sequence<String>) { known.formUnion(names) }

    /// Parses the body: a non-JSON `Content-Type` is a 415, invalid JSON (see `StrictJSON`) or a
    /// non-object a 422 right away.
    static func parse(_ request: Request, context: some RequestContext) async throws -> JSONBody {
        try requireJSONContentType(request)
        let buffer = try await request.body.collect(upTo: BodyLimits.json)
        return try parse(buffer.readableBytesView)
    }

    /// A body already read: invalid JSON or a non-object is a 422.
    static func parse(_ bytes: some Sequence<UInt8>) throws -> JSONBody {
        try item(try decode(bytes, under: ["body"]).get(), location: ["body"]).get()
    }

    /// Client JSON (a body, an NDJSON line) through `StrictJSON`; a failure is an issue under
    /// `base`.
    static func decode(_ bytes: some Sequence<UInt8>, under base: [String]) -> Result<JSONValue, ValidationError> {
        do {
            return .success(try StrictJSON.parse(bytes))
        } catch {
            return .failure(ValidationError([error.issue(under: base)]))
        }
    }

    /// A JSON route takes `application/json` or a `+json` type (any parameters); no
    /// `Content-Type` is read as JSON too, as clients of the original often send none. Anything
    /// else is a 415.
    static func requireJSONContentType(_ request: Request) throws {
        guard let header = request.headers[.contentType] else { return }
        // What clients send, without Foundation's string functions (dear on every request).
        if header == "application/json" || header.utf8.starts(with: "application/json;".utf8) { return }
        let mediaType = header.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        guard let mediaType, !mediaType.isEmpty else { return }
        if mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) {
            return
        }
        throw APIError(
            .unsupportedMediaType, "Unsupported Content-Type '\(mediaType)': this route takes application/json")
    }

    /// A fingerprint of the object's content, so the same input matches however a client
    /// spelled it (key order, spacing, escapes, `1.0` for `1`): `c1:` and the SHA-256 of its
    /// canonical JSON (``canonical(_:to:)``). The `c1:` names the form; the first digests,
    /// Foundation's sorted-keys encoding and no prefix, cost a request more than its append,
    /// and the log compares digests of one form only (``LogWriter``).
    var digest: String {
        var canonical = ByteBuffer()
        Self.canonical(.object(object), to: &canonical)
        return "c1:" + canonical.withUnsafeReadableBytes { lowercaseHex(SHA256.hash(data: $0)) }
    }

    /// `value` without whitespace, an object's keys in the order of their UTF-8 bytes, strings
    /// escaped as ``JSONWriter`` does, a whole number below 2^53 without a fraction, any other
    /// number as Swift prints a `Double` (the shortest form that reads back the same).
    static func canonical(_ value: JSONValue, to buffer: inout ByteBuffer) {
        switch value {
        case .null: buffer.writeStaticString("null")
        case .bool(let bool): buffer.writeStaticString(bool ? "true" : "false")
        case .number(let number):
            if number.rounded(.towardZero) == number, number.magnitude < 0x1p53 {
                buffer.writeString(String(Int64(number)))
            } else {
                buffer.writeString(String(number))
            }
        case .string(let string): JSONWriter.writeString(string, to: &buffer)
        case .array(let items):
            buffer.writeInteger(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                canonical(item, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let fields):
            buffer.writeInteger(UInt8(ascii: "{"))
            let sorted = fields.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (index, (key, item)) in sorted.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                JSONWriter.writeString(key, to: &buffer)
                buffer.writeInteger(UInt8(ascii: ":"))
                canonical(item, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    init(object: [String: JSONValue], location: [String] = ["body"]) {
        self.object = object
        self.location = location
    }

    /// An item of a JSON array (or a line of NDJSON) at `location`: an object, or an issue.
    static func item(_ value: JSONValue, location: [String]) -> Result<JSONBody, ValidationError> {
        guard case .object(let object) = value else {
            return .failure(
                ValidationError(
                    location: location,
                    message: "Input should be a valid dictionary or object to extract fields from",
                    type: "model_attributes_type"))
        }
        return .success(JSONBody(object: object, location: location))
    }

    /// The field is present and not null (this reads it: it is not an extra).
    mutating func has(_ name: String) -> Bool {
        known.insert(name)
        return switch object[name] {
        case nil, .null: false
        default: true
        }
    }

    /// The field is present, as `null`: a client clearing an optional value.
    mutating func isNull(_ name: String) -> Bool {
        known.insert(name)
        return object[name] == .null
    }

    mutating func fail(_ name: String, _ message: String, _ type: String) {
        found.append(.init(location: location + [name], message: message, type: type))
    }

    /// An issue found elsewhere (a nested object's), as it is.
    mutating func fail(_ issue: ValidationError.Issue) { found.append(issue) }

    /// An integer within `range`; absent or null is nil (or a `missing` issue if required).
    mutating func integer(_ name: String, required: Bool = false, in range: ClosedRange<Int>) -> Int? {
        guard has(name) else {
            if required { fail(name, "Field required", "missing") }
            return nil
        }
        guard case .number(let number) = object[name], number.rounded() == number, abs(number) < 1e15 else {
            fail(name, "Input should be a valid integer", "int_type")
            return nil
        }
        let value = Int(number)
        if value < range.lowerBound {
            fail(name, "Input should be greater than or equal to \(range.lowerBound)", "greater_than_equal")
            return nil
        }
        if value > range.upperBound {
            fail(name, "Input should be less than or equal to \(range.upperBound)", "less_than_equal")
            return nil
        }
        return value
    }

    /// A finite number within `range`.
    mutating func number(_ name: String, required: Bool = false, in range: ClosedRange<Double>) -> Double? {
        guard has(name) else {
            if required { fail(name, "Field required", "missing") }
            return nil
        }
        guard case .number(let value) = object[name], value.isFinite else {
            fail(name, "Input should be a valid number", "float_type")
            return nil
        }
        if value < range.lowerBound {
            fail(
                name, "Input should be greater than or equal to \(Self.format(range.lowerBound))", "greater_than_equal")
            return nil
        }
        if value > range.upperBound {
            fail(name, "Input should be less than or equal to \(Self.format(range.upperBound))", "less_than_equal")
            return nil
        }
        return value
    }

    /// When something happened, for an event: a strict ISO 8601 timestamp (a zone-less one is
    /// UTC) inside `window` (the one rule for event times, in Domain).
    mutating func eventTime(_ name: String, window: EventTimeWindow, now: Date = Date()) -> Date? {
        guard let text = string(name) else { return nil }
        guard let date = Timestamp.parseDateTime(text) else {
            fail(name, "Input should be a valid datetime", "datetime_parsing")
            return nil
        }
        if let violation = window.violation(date, now: now) {
            fail(name, violation.message, violation.type)
            return nil
        }
        return date
    }

    /// A strict ISO 8601 timestamp (a zone-less one is UTC) in years 0001 through 9999, which
    /// is what PostgreSQL and the calendar Vigil writes in can hold.
    mutating func dateTime(_ name: String) -> Date? {
        guard let text = string(name, length: 1...40) else { return nil }
        guard let date = Timestamp.parseDateTime(text) else {
            fail(name, "Input should be a valid datetime", "datetime_parsing")
            return nil
        }
        if let issue = QueryParameters.unrepresentable(date) {
            fail(name, issue.message, issue.type)
            return nil
        }
        return date
    }

    /// A strict ISO 8601 timestamp (a zone-less one is UTC) after `now`: an expiry.
    mutating func futureTime(_ name: String, now: Date = Date()) -> Date? {
        guard let text = string(name) else { return nil }
        guard let date = Timestamp.parseDateTime(text) else {
            fail(name, "Input should be a valid datetime", "datetime_parsing")
            return nil
        }
        guard date > now, date < Date(timeIntervalSince1970: 253_402_300_800) else {
            fail(name, "Value error, must be in the future (and before the year 10000)", "value_error")
            return nil
        }
        return date
    }

    /// A list of `count` strings of `length` characters each (an issue names the bad item's index).
    mutating func stringList(_ name: String, count: ClosedRange<Int>, length: ClosedRange<Int>) -> [String]? {
        guard has(name) else { return nil }
        guard case .array(let items) = object[name] else {
            fail(name, "Input should be a valid list", "list_type")
            return nil
        }
        if items.count < count.lowerBound {
            fail(name, "List should have at least \(count.lowerBound) item after validation", "too_short")
            return nil
        }
        if items.count > count.upperBound {
            fail(name, "List should have at most \(count.upperBound) items after validation", "too_long")
            return nil
        }
        var values: [String] = []
        for (index, item) in items.enumerated() {
            var element = JSONBody(object: ["item": item], location: location + [name])
            if let value = element.string("item", required: true, length: length) {
                values.append(value)
            } else {
                found += element.issues.map { issue in
                    var issue = issue
                    issue.location = location + [name, String(index)]
                    return issue
                }
            }
        }
        return values.count == items.count ? values : nil
    }

    /// A field's JSON value as it is (absent or null: nil), for a route that checks its shape
    /// itself.
    mutating func value(_ name: String) -> JSONValue? {
        guard has(name) else { return nil }
        return object[name]
    }

    /// A JSON object, as it is.
    mutating func object(_ name: String) -> [String: JSONValue]? {
        guard has(name) else { return nil }
        guard case .object(let value) = object[name] else {
            fail(name, "Input should be a valid dictionary", "dict_type")
            return nil
        }
        return value
    }

    private static func format(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(value)
    }

    /// A string of `length` characters (Unicode scalars); absent or null is nil (or a `missing` issue if required).
    /// Unless `multiline` (free text: notes, summaries), it is one line: control characters
    /// (U+0000–U+001F, U+007F) are refused.
    mutating func string(
        _ name: String, required: Bool = false, length: ClosedRange<Int> = 0...Int.max, multiline: Bool = false
    ) -> String? {
        guard has(name) else {
            if required { fail(name, "Field required", "missing") }
            return nil
        }
        guard case .string(let value) = object[name] else {
            fail(name, "Input should be a valid string", "string_type")
            return nil
        }
        // In Unicode scalars, as the seeds count (``Swift/String/characterCount``).
        let characters = value.characterCount
        if characters < length.lowerBound {
            let unit = length.lowerBound == 1 ? "character" : "characters"
            fail(name, "String should have at least \(length.lowerBound) \(unit)", "string_too_short")
            return nil
        }
        if characters > length.upperBound {
            fail(name, "String should have at most \(length.upperBound) characters", "string_too_long")
            return nil
        }
        if !multiline, value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            fail(name, "Value error, Control characters (U+0000-U+001F, U+007F) are not allowed", "value_error")
            return nil
        }
        return value
    }

    /// An IANA time zone's name (`Europe/Berlin`); nil when absent, or when unknown (then an
    /// issue).
    mutating func timeZone(_ name: String) -> String? {
        guard let identifier = string(name, length: 1...64) else { return nil }
        guard TimeZone(identifier: identifier) != nil else {
            fail(name, "Value error, unknown time zone '\(identifier)'", "value_error")
            return nil
        }
        return identifier
    }

    mutating func bool(_ name: String) -> Bool? {
        guard has(name) else { return nil }
        guard case .bool(let value) = object[name] else {
            fail(name, "Input should be a valid boolean", "bool_type")
            return nil
        }
        return value
    }

    /// One of an enum's raw values.
    mutating func choice<Value: RawRepresentable & CaseIterable>(_ name: String, _ type: Value.Type) -> Value?
    where Value.RawValue == String {
        guard let text = string(name) else { return nil }
        if let value = Value(rawValue: text) { return value }
        fail(name, "Input should be " + Self.alternatives(Value.allCases.map(\.rawValue)), "enum")
        return nil
    }

    /// Throws the collected issues, if any.
    func validate() throws {
        if !issues.isEmpty { throw ValidationError(issues) }
    }

    /// `'a', 'b' or 'c'`, pydantic's wording.
    static func alternatives(_ values: [String]) -> String {
        let quoted = values.map { "'\($0)'" }
        guard quoted.count > 1 else { return quoted.joined() }
        return quoted.dropLast().joined(separator: ", ") + " or " + quoted.last!
    }
}
