import EventStore
import Foundation
import Hummingbird
import Yams

/// The API contract (`schemas/openapi.yaml`) as `GET /openapi.json`, and `GET /docs`: a page
/// rendered from it (every operation by tag, with what it needs, its parameters and answers).
/// Both are open: the contract is no secret. Read once, when the router is built; a file that
/// can't be read is a 503 saying why, not a server that won't start.
struct OpenAPIController<Context: RequestContext> {
    let contract: Result<OpenAPIContract, OpenAPIContract.Unreadable>

    init(file: URL = OpenAPIContract.file) {
        contract = Result { try OpenAPIContract(file: file) }.mapError { OpenAPIContract.Unreadable("\($0)") }
    }

    func addRoutes(to router: Router<Context>) {
        router.get("/openapi.json") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try load().json)))
        }
        router.get("/docs") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: try load().html)))
        }
    }

    private func load() throws -> OpenAPIContract {
        switch contract {
        case .success(let contract): return contract
        case .failure(let error):
            throw APIError(.serviceUnavailable, "The API contract could not be read: \(error.description)")
        }
    }
}

/// The parsed contract: its JSON and its HTML rendering, and its operations.
struct OpenAPIContract: Sendable {
    struct Unreadable: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static var file: URL { Migrator.schemasDirectory().appendingPathComponent("openapi.yaml") }

    let json: [UInt8]
    let html: String
    /// `"METHOD /path"` of every operation.
    let operations: [String]

    init(file: URL) throws {
        let yaml = try String(contentsOf: file, encoding: .utf8)
        guard let spec = try Yams.load(yaml: yaml) as? [String: Any], let paths = spec["paths"] as? [String: Any]
        else { throw Unreadable("\(file.path) is not an OpenAPI document") }
        json = Array(try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys]))
        var operations: [String] = []
        var byTag: [String: [(String, String, [String: Any], [Any])]] = [:]
        for (path, item) in paths.sorted(by: { $0.key < $1.key }) {
            guard let item = item as? [String: Any] else { continue }
            let shared = item["parameters"] as? [Any] ?? []
            for method in ["get", "post", "put", "patch", "delete"] {
                guard let operation = item[method] as? [String: Any] else { continue }
                operations.append("\(method.uppercased()) \(path)")
                let tag = (operation["tags"] as? [String])?.first ?? "other"
                byTag[tag, default: []].append(
                    (method.uppercased(), path, operation, shared + (operation["parameters"] as? [Any] ?? [])))
            }
        }
        self.operations = operations.sorted()
        let info = spec["info"] as? [String: Any] ?? [:]
        html = Self.render(
            title: info["title"] as? String ?? "API", description: info["description"] as? String ?? "",
            byTag: byTag, components: spec["components"] as? [String: Any] ?? [:])
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    private static func render(
        title: String, description: String, byTag: [String: [(String, String, [String: Any], [Any])]],
        components: [String: Any]
    ) -> String {
        let parameters = components["parameters"] as? [String: Any] ?? [:]
        var page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) API</title>
            <style>
            body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
            table{border-collapse:collapse;width:100%;margin-bottom:2em}
            td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
            code{font-size:.95em}.m{font-weight:bold;font-family:monospace}
            </style></head><body>
            <h1>\(escape(title)) API</h1>
            <p>\(escape(description))</p>
            <p>The contract itself: <a href="/openapi.json">/openapi.json</a>.</p>

            """
        for tag in byTag.keys.sorted() {
            page += "<h2 id=\"\(escape(tag))\">\(escape(tag))</h2>\n"
            page += "<table><tr><th>Method</th><th>Path</th><th>What</th><th>Needs</th><th>Parameters</th>"
            page += "<th>Answers</th></tr>\n"
            for (method, path, operation, operationParameters) in byTag[tag] ?? [] {
                let names = operationParameters.compactMap { parameter -> String? in
                    var parameter = parameter as? [String: Any] ?? [:]
                    if let reference = parameter["$ref"] as? String,
                        let resolved = parameters[String(reference.split(separator: "/").last ?? "")] as? [String: Any]
                    {
                        parameter = resolved
                    }
                    guard let name = parameter["name"] as? String else { return nil }
                    return "\(name) (\(parameter["in"] as? String ?? "?"))"
                }
                let answers = (operation["responses"] as? [String: Any] ?? [:]).keys.sorted().joined(separator: " ")
                page += "<tr><td class=\"m\">\(method)</td><td><code>\(escape(path))</code></td>"
                page += "<td>\(escape(operation["summary"] as? String ?? ""))</td>"
                page += "<td>\(escape(operation["x-vigil-needs"] as? String ?? ""))</td>"
                page += "<td>\(escape(names.joined(separator: ", ")))</td><td>\(answers)</td></tr>\n"
            }
            page += "</table>\n"
        }
        return page + "</body></html>\n"
    }
}
