import Domain
import Foundation
import Hummingbird

/// Reads a JSON request body field by field with FastAPI's (pydantic's) validation errors,
/// collecting every problem before failing, as the original does.
struct JSONBody {
    private let object: [String: JSONValue]
    private(set) var issues: [ValidationError.Issue] = []

    /// Parses the body: invalid JSON or a non-object is a 422 right away.
    static func parse(_ request: Request, context: some RequestContext) async throws -> JSONBody {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let data = Data(buffer.readableBytesView)
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ValidationError(location: ["body", "0"], message: "JSON decode error", type: "json_invalid")
        }
        guard case .object(let object) = value else {
            throw ValidationError(
                location: ["body"],
                message: "Input should be a valid dictionary or object to extract fields from",
                type: "model_attributes_type"
            )
        }
        return JSONBody(object: object)
    }

    private init(object: [String: JSONValue]) { self.object = object }

    func has(_ name: String) -> Bool {
        switch object[name] {
        case nil, .null: false
        default: true
        }
    }

    mutating func fail(_ name: String, _ message: String, _ type: String) {
        issues.append(.init(location: ["body", name], message: message, type: type))
    }

    /// A string of `length` characters; absent or null is nil (or a `missing` issue if required).
    mutating func string(_ name: String, required: Bool = false, length: ClosedRange<Int> = 0...Int.max) -> String? {
        guard has(name) else {
            if required { fail(name, "Field required", "missing") }
            return nil
        }
        guard case .string(let value) = object[name] else {
            fail(name, "Input should be a valid string", "string_type")
            return nil
        }
        if value.count < length.lowerBound {
            let unit = length.lowerBound == 1 ? "character" : "characters"
            fail(name, "String should have at least \(length.lowerBound) \(unit)", "string_too_short")
            return nil
        }
        if value.count > length.upperBound {
            fail(name, "String should have at most \(length.upperBound) characters", "string_too_long")
            return nil
        }
        return value
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
