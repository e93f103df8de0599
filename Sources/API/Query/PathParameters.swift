import Foundation
import Hummingbird

/// Path parameters as clients meant them: percent-decoded (`/api/cameras/p%C3%B3rch` names the
/// camera `pórch`; Hummingbird hands them over as they were sent).
extension Parameters {
    /// The path parameter `name`, percent-decoded (as sent when it isn't valid percent-encoding).
    func text(_ name: String) throws -> String {
        let raw = try require(name)
        return raw.removingPercentEncoding ?? raw
    }

    /// An integer path parameter, or FastAPI's 422.
    func integerID(_ name: String) throws -> Int64 {
        guard let value = Int64(try text(name)) else {
            throw ValidationError(
                location: ["path", name],
                message: "Input should be a valid integer, unable to parse string as an integer",
                type: "int_parsing"
            )
        }
        return value
    }
}
