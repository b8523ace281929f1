import Foundation
import NATSProto
import Transport

/// JetStream on a NATS connection: the `$JS.API` requests for streams and consumers, publishing
/// with acknowledgement, and the ground KV and Object Store stand on. It uses only the public
/// API of ``NATSClient`` (requests, subscriptions, publishes), as nats.go's `jetstream` package
/// sits on its core connection; many contexts may share one client.
public struct JetStreamContext: Sendable {
    /// The connection.
    public let client: NATSClient
    /// The API subject prefix: `$JS.API` or, with a domain, `$JS.<domain>.API`.
    public let apiPrefix: String
    /// How long an API request waits for its answer.
    public var timeout: Duration

    /// A context for the account's JetStream, or the one of `domain` (a leaf node's), or one
    /// behind an exported API under `apiPrefix`.
    public init(client: NATSClient, domain: String? = nil, apiPrefix: String? = nil, timeout: Duration = .seconds(5)) {
        self.client = client
        if let apiPrefix {
            self.apiPrefix = apiPrefix.hasSuffix(".") ? String(apiPrefix.dropLast()) : apiPrefix
        } else if let domain, !domain.isEmpty {
            self.apiPrefix = "$JS.\(domain).API"
        } else {
            self.apiPrefix = "$JS.API"
        }
        self.timeout = timeout
    }

    /// The connected server's version, for features newer servers have.
    public var serverVersion: ServerVersion { ServerVersion(parsing: client.serverInfo?.version ?? "0.0.0") }

    /// Refuses `features` (named, with the version that brought them) when the server lacks them.
    func require(_ missing: [String], for activity: String) throws(JetStreamError) {
        guard !missing.isEmpty else { return }
        throw JetStreamError(
            .usage, message: "\(activity) uses \(missing.joined(separator: ", ")), which nats-server \(serverVersion) does not have")
    }

    // MARK: - The API

    /// An API error as the server sends it: `{"error": {"code": 404, "err_code": 10059, "description": "…"}}`.
    struct APIErrorBody: Decodable {
        struct Fields: Decodable {
            var code: Int
            var err_code: Int?
            var description: String?
        }

        var error: Fields?
    }

    /// Sends `body` as JSON to `$JS.API.<operation>` and decodes the answer as `Response`, or
    /// throws the API's error.
    func request<Body: Encodable, Response: Decodable>(_ operation: String, body: Body, as type: Response.Type) async throws(JetStreamError)
        -> Response
    {
        let payload: Data
        do {
            payload = try JetStreamJSON.encode(body)
        } catch {
            throw JetStreamError(.usage, message: "\(operation): the request cannot be encoded: \(error)")
        }
        let reply = try await rawRequest(operation, payload: payload)
        return try Self.decode(Response.self, from: reply, operation: operation)
    }

    /// Sends an empty request to `$JS.API.<operation>` and decodes the answer as `Response`.
    func request<Response: Decodable>(_ operation: String, as type: Response.Type) async throws(JetStreamError) -> Response {
        let reply = try await rawRequest(operation, payload: Data())
        return try Self.decode(Response.self, from: reply, operation: operation)
    }

    /// The request's reply message, or the mapped failure.
    func rawRequest(_ operation: String, payload: Data) async throws(JetStreamError) -> NATSMessage {
        let subject = apiPrefix + "." + operation
        do {
            return try await client.request(payload, subject: subject, timeout: timeout)
        } catch {
            throw JetStreamError.from(error, doing: operation)
        }
    }

    /// Decodes an API answer: its error first, then `Response`.
    static func decode<Response: Decodable>(_ type: Response.Type, from reply: NATSMessage, operation: String) throws(JetStreamError) -> Response {
        if let status = reply.status, reply.payload.readableBytes == 0 {
            throw JetStreamError(.api, code: status, message: "\(operation): status \(status) \(reply.headers?.statusDescription ?? "")")
        }
        let data = Data(reply.payload.readableBytesView)
        // Only an answer that names an "error" key is decoded a second time, as an error.
        if data.range(of: Data(#""error""#.utf8)) != nil, let failure = try? JetStreamJSON.decode(APIErrorBody.self, from: data),
            let error = failure.error
        {
            throw JetStreamError(.api, code: error.code, errorCode: error.err_code ?? 0, message: error.description ?? "\(operation) failed")
        }
        do {
            return try JetStreamJSON.decode(Response.self, from: data)
        } catch {
            throw JetStreamError(.decoding, message: "\(operation): the answer is not what the API defines: \(Self.describe(error))")
        }
    }

    /// A decoding error in one line, with the path of the field that was wrong.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(path(context.codingPath + [key]))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the document" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// The account's usage and limits (`$JS.API.INFO`).
    public func accountInfo() async throws(JetStreamError) -> AccountInfo {
        try await request("INFO", as: AccountInfo.self)
    }
}

/// An empty request body.
struct Empty: Codable {}

/// Names the API accepts for streams and consumers: no whitespace, `.`, `*`, `>`, path
/// separators or control characters.
enum JetStreamName {
    static func validate(_ name: String, as role: String) throws(JetStreamError) {
        guard !name.isEmpty else { throw JetStreamError(.usage, message: "a \(role) name cannot be empty") }
        for scalar in name.unicodeScalars {
            switch scalar {
            case ".", "*", ">", "/", "\\", " ", "\t", "\r", "\n":
                throw JetStreamError(.usage, message: "the \(role) name \"\(name)\" contains \"\(scalar.escaped(asASCII: true))\", which a \(role) name cannot")
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    throw JetStreamError(.usage, message: "the \(role) name \"\(name.debugDescription)\" contains a control character")
                }
            }
        }
    }
}
