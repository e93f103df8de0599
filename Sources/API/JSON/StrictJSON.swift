import Domain

/// The one reader of JSON that clients send (request bodies, NDJSON lines, cursors).
///
/// Strict RFC 8259, and nothing in the result that PostgreSQL or the read models would choke
/// on later, so no route can forget a check:
/// - no trailing commas, comments, or other extensions; nesting at most `maximumDepth` deep;
/// - a key appears once per object (a duplicate is refused rather than silently last-wins);
/// - strings are valid Unicode (no invalid UTF-8, no lone surrogate escapes) without NUL
///   (`\u0000`), which PostgreSQL's `text` and `jsonb` can't hold (22P05/22021);
/// - numbers are finite doubles, and integers ones a double holds exactly (|n| < 2^53).
///
/// A failure says where: the path (object keys and array indices) of the offending value, or
/// the byte offset of a syntax error.
struct StrictJSON {
    struct Failure: Error, Equatable {
        /// Keys and indices from the document's root to the bad value, then (for a syntax
        /// error) the byte offset.
        var location: [String]
        var message: String
        var type: String
        /// What exactly is wrong with the syntax (FastAPI's `ctx.error`).
        var reason: String?

        /// The issue, under `base` (`["body"]`, `["line", "3"]`).
        func issue(under base: [String]) -> ValidationError.Issue {
            .init(location: base + location, message: message, type: type, reason: reason)
        }
    }

    static let maximumDepth = 512

    private let bytes: [UInt8]
    private var index = 0
    private var path: [String] = []

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: some Sequence<UInt8>) throws(Failure) -> JSONValue {
        var parser = StrictJSON(Array(bytes))
        parser.skipWhitespace()
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.syntax("Extra data after the JSON value") }
        return value
    }

    // MARK: Text rules (shared with the query-parameter check)

    /// Why `text` can't be stored, or nil: the rule for every string a client sends.
    static func textProblem(_ text: some StringProtocol) -> (message: String, type: String)? {
        if text.utf8.contains(0) { return nulProblem }
        return nil
    }

    static let nulProblem = (
        message: "Value error, NUL characters (\\u0000) are not allowed in text", type: "value_error"
    )
    static let unicodeProblem = (
        message: "Input should be a valid string, unable to parse raw data as a unicode string",
        type: "string_unicode"
    )

    // MARK: Grammar

    private func syntax(_ reason: String) -> Failure {
        Failure(location: [String(index)], message: "JSON decode error", type: "json_invalid", reason: reason)
    }

    private func failure(_ problem: (message: String, type: String), at location: [String]) -> Failure {
        Failure(location: location, message: problem.message, type: problem.type)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func value() throws(Failure) -> JSONValue {
        guard let byte = current else { throw syntax("Expecting value") }
        switch byte {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw syntax("Expecting value")
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(Failure) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
            bytes[index..<index + count].elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: count))
        else { throw syntax("Expecting value") }
        index += count
        return value
    }

    private mutating func enter() throws(Failure) {
        if path.count >= Self.maximumDepth { throw syntax("Nesting deeper than \(Self.maximumDepth) levels") }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        index += 1  // {
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            guard current == UInt8(ascii: "\"") else {
                throw syntax(
                    members.isEmpty
                        ? "Expecting property name enclosed in double quotes"
                        : "Trailing comma or property name not enclosed in double quotes")
            }
            let key = try string(isKey: true)
            if members[key] != nil {
                throw Failure(location: path + [key], message: "Duplicate key in JSON object", type: "duplicate_key")
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw syntax("Expecting ':' delimiter") }
            index += 1
            skipWhitespace()
            path.append(key)
            members[key] = try value()
            path.removeLast()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default: throw syntax("Expecting ',' delimiter")
            }
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        index += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            if current == UInt8(ascii: "]") { throw syntax("Trailing comma") }
            path.append(String(items.count))
            items.append(try value())
            path.removeLast()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "]"):
                index += 1
                return .array(items)
            default: throw syntax("Expecting ',' delimiter")
            }
        }
    }

    /// A string (the opening quote at `index`); its location for Unicode and NUL problems is
    /// the current path (for a key with a NUL: the object's path and the key).
    private mutating func string(isKey: Bool = false) throws(Failure) -> String {
        let start = index
        index += 1  // "
        var decoded: [UInt8] = []
        var runStart = index
        var problem: (message: String, type: String)?
        while true {
            guard let byte = current else {
                index = start
                throw syntax("Unterminated string")
            }
            if byte == UInt8(ascii: "\"") {
                decoded += bytes[runStart..<index]
                index += 1
                break
            }
            if byte < 0x20 { throw syntax("Invalid control character in string") }
            if byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            decoded += bytes[runStart..<index]
            index += 1
            guard let escape = current else { throw syntax("Unterminated string") }
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0c)
            case UInt8(ascii: "n"): decoded.append(0x0a)
            case UInt8(ascii: "r"): decoded.append(0x0d)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xd800...0xdbff).contains(scalar) {
                    // A high surrogate must be followed by an escaped low one.
                    if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    {
                        index += 2
                        let low = try hex4()
                        if (0xdc00...0xdfff).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                        } else {
                            problem = problem ?? Self.unicodeProblem
                            scalar = 0xfffd
                        }
                    } else {
                        problem = problem ?? Self.unicodeProblem
                        scalar = 0xfffd
                    }
                } else if (0xdc00...0xdfff).contains(scalar) {
                    problem = problem ?? Self.unicodeProblem
                    scalar = 0xfffd
                }
                decoded += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
            default: throw syntax("Invalid \\escape")
            }
            runStart = index
        }
        guard let text = String(validating: decoded, as: UTF8.self) else {
            throw failure(Self.unicodeProblem, at: path)
        }
        if let problem { throw failure(problem, at: path) }
        if let problem = Self.textProblem(text) { throw failure(problem, at: isKey ? path + [text] : path) }
        return text
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw syntax("Invalid \\uXXXX escape") }
        var value: UInt32 = 0
        for byte in bytes[index..<index + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw syntax("Invalid \\uXXXX escape")
            }
            value = value << 4 | UInt32(digit)
        }
        index += 4
        return value
    }

    /// 2^53 − 1: the largest integer every JSON reader's double holds exactly.
    static let largestExactInteger = 9_007_199_254_740_991.0

    private mutating func number() throws(Failure) -> JSONValue {
        let start = index
        func digits() -> Int {
            let from = index
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            return index - from
        }
        if current == UInt8(ascii: "-") { index += 1 }
        if current == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            throw syntax("Expecting value")
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            index += 1
            isInteger = false
            guard digits() > 0 else { throw syntax("Expecting digits after the decimal point") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            isInteger = false
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw syntax("Expecting digits in the exponent") }
        }
        guard let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)), value.isFinite else {
            throw Failure(location: path, message: "Input should be a finite number", type: "finite_number")
        }
        // A double holds every integer up to 2^53 exactly, and no more: a larger one would be
        // stored with other digits than it was sent with (an id, a plate number), and two
        // keyed requests differing in it would read as the same.
        if isInteger, abs(value) > Self.largestExactInteger {
            throw Failure(
                location: path,
                message: "Input should be an integer from -9007199254740991 to 9007199254740991 (a larger one loses "
                    + "digits as a JSON number: send it as a string)", type: "int_too_large")
        }
        return .number(value)
    }
}
