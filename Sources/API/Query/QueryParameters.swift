import Domain
import Foundation
import Hummingbird

/// Reads query parameters with FastAPI's validation errors (the seeds' format), so that a
/// client of the Python original gets the same 422 bodies.
///
/// Text that can't be stored or compared (NUL) never gets here: `QueryTextMiddleware` refuses
/// it for every route.
///
/// Values are read as forms write them (`application/x-www-form-urlencoded`, as the original's
/// Starlette reads them): `+` is a space, then `%XX` is decoded; what Python's `requests`, a
/// browser's `URLSearchParams` and HTML forms send for `search=connection refused`. An empty
/// value (`camera_id=`) is no value, as the original's `if camera_id:` has it: a UI that always
/// sends every filter gets the unfiltered list, not one filtered on "".
struct QueryParameters {
    let request: Request
    /// Every `name=value` pair, decoded, in order.
    let pairs: [(name: String, value: String)]

    init(_ request: Request) {
        self.request = request
        pairs = Self.pairs(request.uri.query)
    }

    /// The first non-empty value of `name`.
    func string(_ name: String) -> String? {
        pairs.first { $0.name == name && !$0.value.isEmpty }?.value
    }

    static func pairs(_ query: String?) -> [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (formDecoded(parts[0]), parts.count > 1 ? formDecoded(parts[1]) : "")
        }
    }

    /// `+` as a space, then percent-decoding; text that is not valid percent-encoding is kept
    /// as it came (as Hummingbird's own parser keeps it).
    static func formDecoded(_ text: Substring) -> String {
        let spaced = text.contains("+") ? text.replacingOccurrences(of: "+", with: " ") : String(text)
        return spaced.contains("%") ? spaced.removingPercentEncoding ?? spaced : spaced
    }

    /// A time as a query carried it: the `+` of an offset typed raw (`…T10:00:00+02:00`) was read
    /// as a space, and is put back. Only a space after the time of day can be one (a space at
    /// index 10 is the date and time separator PostgreSQL writes).
    static func restoringOffsetSign(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.utf8.lastIndex(of: 0x20),
            trimmed.utf8.distance(from: trimmed.utf8.startIndex, to: space) > 10
        else { return trimmed }
        var restored = trimmed
        restored.replaceSubrange(space...space, with: "+")
        return restored
    }

    /// An integer in `range`, `defaultValue` when absent.
    func integer(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = string(name) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError(
                location: ["query", name],
                message: "Input should be a valid integer, unable to parse string as an integer",
                type: "int_parsing"
            )
        }
        try Self.check(value, in: range, name)
        return value
    }

    /// A comma-separated list (`types=A,B`), also accepting the parameter repeated.
    func list(_ name: String) -> [String]? {
        let values = pairs.filter { $0.name == name }
            .flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return values.isEmpty ? nil : values
    }

    /// pydantic's bound errors for `value` outside `range`.
    static func check<Value: Comparable>(_ value: Value, in range: ClosedRange<Value>, _ name: String) throws {
        if value < range.lowerBound {
            throw ValidationError(
                location: ["query", name],
                message: "Input should be greater than or equal to \(range.lowerBound)",
                type: "greater_than_equal"
            )
        }
        if value > range.upperBound {
            throw ValidationError(
                location: ["query", name],
                message: "Input should be less than or equal to \(range.upperBound)",
                type: "less_than_equal"
            )
        }
    }

    /// A boolean the way pydantic reads one from a query string.
    func bool(_ name: String) throws -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes", "on", "t", "y": return true
        case "false", "0", "no", "off", "f", "n": return false
        default:
            throw ValidationError(
                location: ["query", name],
                message: "Input should be a valid boolean, unable to interpret input",
                type: "bool_parsing"
            )
        }
    }

    /// A number in `range`.
    func double(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let text = string(name) else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ValidationError(
                location: ["query", name],
                message: "Input should be a valid number, unable to parse string as a number",
                type: "float_parsing"
            )
        }
        try Self.check(value, in: range, name)
        return value
    }

    /// An ISO 8601 date-time (`Z` or an offset; none means UTC) or a date (its midnight, UTC),
    /// read strictly (`Timestamp`) and within what PostgreSQL can compare against.
    func date(_ name: String) throws -> Date? {
        guard let text = string(name) else { return nil }
        guard let date = Timestamp.parse(Self.restoringOffsetSign(text)) else {
            throw ValidationError(
                location: ["query", name],
                message: "Input should be a valid datetime or date, invalid format",
                type: "datetime_from_date_parsing"
            )
        }
        try Self.checkRepresentable(date, name)
        return date
    }

    /// A date a query can compare with: years 0001 through 9999.
    static func checkRepresentable(_ date: Date, _ name: String) throws {
        if let issue = unrepresentable(date) {
            throw ValidationError(location: ["query", name], message: issue.message, type: issue.type)
        }
    }

    /// Why PostgreSQL can't hold `date` (outside years 0001 through 9999), in the seed's words;
    /// nil when it can. For queries and bodies alike.
    static func unrepresentable(_ date: Date) -> (message: String, type: String)? {
        let range = Timestamp.representable
        if date < range.lowerBound {
            return (
                "Input should be greater than or equal to \(Timestamp.format(range.lowerBound))", "greater_than_equal"
            )
        }
        if date >= range.upperBound { return ("Input should be less than 10000-01-01T00:00:00Z", "less_than") }
        return nil
    }

    /// One of an enum's raw values.
    func choice<Value: RawRepresentable & CaseIterable>(_ name: String, _ type: Value.Type) throws -> Value?
    where Value.RawValue == String {
        guard let text = string(name) else { return nil }
        if let value = Value(rawValue: text) { return value }
        throw ValidationError(
            location: ["query", name],
            message: "Input should be " + JSONBody.alternatives(Value.allCases.map(\.rawValue)),
            type: "enum"
        )
    }

    /// `start_date` and `end_date`; start after end is a 400.
    func dateRange() throws -> (start: Date?, end: Date?) {
        let start = try date("start_date")
        let end = try date("end_date")
        if let start, let end, start > end {
            throw APIError.badRequest("start_date must be before or equal to end_date")
        }
        return (start, end)
    }
}

/// Refuses a request whose query values (percent-decoded; names are not decoded, so routes
/// never see one with a NUL) or path hold text PostgreSQL can't take
/// (`StrictJSON.textProblem`: NUL), before any route reads them: a 422 naming the query
/// parameter, or a 400 for the path.
struct QueryTextMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        try Self.check(request)
        return try await next(request, context)
    }

    /// Throws the 422 (a query parameter) or 400 (the path) for text PostgreSQL can't hold.
    static func check(_ request: Request) throws {
        var issues: [ValidationError.Issue] = []
        for (name, value) in QueryParameters.pairs(request.uri.query) {
            if let problem = StrictJSON.textProblem(value) {
                issues.append(.init(location: ["query", name], message: problem.message, type: problem.type))
            }
        }
        if !issues.isEmpty { throw ValidationError(issues) }
        if request.uri.path.contains("%"), let path = request.uri.path.removingPercentEncoding,
            let problem = StrictJSON.textProblem(path)
        {
            throw APIError.badRequest("Invalid path: \(problem.message)")
        }
    }

    /// ``check(_:)``'s finding as a socket's close reason (a refused handshake could only be an
    /// empty 400); nil when the text is fine.
    static func socketRefusal(_ request: Request) -> String? {
        do {
            try check(request)
            return nil
        } catch let error as ValidationError {
            let issue = error.issues.first
            return "Invalid query parameter '\(issue?.location.last ?? "")': \(issue?.message ?? "")"
        } catch let error as APIError {
            return error.detail
        } catch {
            return "\(error)"
        }
    }
}
