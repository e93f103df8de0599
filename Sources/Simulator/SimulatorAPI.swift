import AsyncHTTPClient
import Domain
import Foundation
import NIOCore
import NIOHTTP1

/// The API as the simulator (`vigil simulate`) and the ingest benchmark use it: over real HTTP,
/// with the worker key, retrying what a restart or an outage makes fail.
public struct SimulatorAPI: Sendable {
    public let http: HTTPClient
    public let base: String
    public let key: String?

    public struct Report: Sendable { public var accepted: Int, rejected: Int }

    public init(http: HTTPClient, base: String, key: String?) {
        self.http = http
        self.base = base
        self.key = key
    }

    public func request(
        _ method: HTTPMethod, _ path: String, contentType: String, body: String, headers: [(String, String)] = []
    )
        -> HTTPClientRequest
    {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "User-Agent", value: "vigil-simulate")
        if let key { request.headers.add(name: "X-API-Key", value: key) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return request
    }

    /// Sends `request`; while the server can't be reached or answers 5xx (a restart, a
    /// database outage), tries again with a doubling wait (0.5 s up to 10 s) for up to 10
    /// minutes. Every request the simulator retries carries an `Idempotency-Key`, so a retry
    /// never records a detection twice.
    public func execute(_ request: HTTPClientRequest) async throws -> (HTTPResponseStatus, [String: Any]) {
        let clock = ContinuousClock()
        let giveUp = clock.now + .seconds(600)
        var delay = Duration.milliseconds(500)
        while true {
            let outcome: Result<(HTTPResponseStatus, [String: Any]), any Error>
            do {
                let response = try await http.execute(request, timeout: .seconds(120))
                let body = try await response.body.collect(upTo: 16 << 20)
                let object =
                    (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
                outcome = .success((response.status, object))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let (status, object)) where status.code < 500: return (status, object)
            case _ where clock.now + delay > giveUp: return try outcome.get()
            case .success(let (status, _)):
                print("simulate: \(request.url) answered \(status.code); trying again in \(delay)")
            case .failure(let error):
                print("simulate: \(request.url) failed (\(error)); trying again in \(delay)")
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(10))
        }
    }

    /// Registers a camera; an existing one (409) is reused. Returns its id.
    public func registerCamera(_ name: String) async throws -> String {
        let folder = "/export/foscam/" + name.lowercased().replacingOccurrences(of: " ", with: "_")
        let body = #"{"name": "\#(name)", "folder_path": "\#(folder)"}"#
        let (status, object) = try await execute(
            request(.POST, "/api/cameras", contentType: "application/json", body: body))
        if status == .created, let id = object["id"] as? String { return id }
        // 202: registered, but the read models had not applied it within the server's wait.
        if status == .conflict || status == .accepted { return Camera.normalizedID(name) }
        throw SimulatorError("POST /api/cameras \(name): \(status.code) \(object)")
    }

    public func sendLines(_ lines: [String], idempotencyKey: String) async throws -> Report {
        let (status, object) = try await execute(
            request(
                .POST, "/api/detections/batch", contentType: "application/x-ndjson",
                body: lines.joined(separator: "\n"), headers: [("Idempotency-Key", idempotencyKey)]))
        guard status == .ok else { throw SimulatorError("POST /api/detections/batch: \(status.code) \(object)") }
        return Report(
            accepted: (object["accepted"] as? Int ?? 0) + (object["already_stored"] as? Int ?? 0),
            rejected: object["rejected"] as? Int ?? 0)
    }

    public func sendOne(_ json: String) async throws -> Bool {
        let (status, _) = try await execute(
            request(
                .POST, "/api/detections", contentType: "application/json", body: json,
                headers: [("Idempotency-Key", UUID().uuidString)]))
        return status == .created || status == .ok
    }
}

public struct SimulatorError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
