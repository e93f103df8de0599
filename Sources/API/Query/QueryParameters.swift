import Foundation
import Hummingbird

/// Reads query parameters with FastAPI's validation errors (the seeds' format), so that a
/// client of the Python original gets the same 422 bodies.
struct QueryParameters {
    let request: Request

    init(_ request: Request) { self.request = request }

    func string(_ name: String) -> String? {
        guard let value = request.uri.queryParameters[name[...]] else { return nil }
        return String(value)
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
        return value
    }

    /// A comma-separated list (`types=A,B`), also accepting the parameter repeated.
    func list(_ name: String) -> [String]? {
        let values = request.uri.queryParameters.getAll(name)
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return values.isEmpty ? nil : values
    }
}
