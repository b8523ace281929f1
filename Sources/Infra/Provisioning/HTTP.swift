import Foundation
import Transport

/// The little HTTP/1.1 the local stack needs: GETs to loopback monitoring endpoints (Prometheus,
/// the exporters, nats-server's /varz) and the NATS exporter's /metrics. Plain TCP, one request
/// per connection, bodies bounded.
public enum HTTP {
    /// A response: status code, lower-cased header names, body.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// What went wrong with a request, and where.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var url: String
        public var message: String
        public var description: String { "GET \(url): \(message)" }
    }

    /// The largest response read (headers and body); /jsz with every consumer stays far below.
    public static let maximumResponseBytes = 32 << 20

    /// GETs `path` from `host:port` with `Connection: close` and reads to the end, all under
    /// `timeout`.
    public static func get(host: String = "127.0.0.1", port: Int, path: String, timeout: Duration = .seconds(5)) async throws(Failure) -> Response {
        let url = "http://\(host):\(port)\(path)"
        let deadline = Deadline.after(timeout)
        let connection: Connection
        do {
            connection = try await Connection.connect(to: .tcp(host: host, port: port), options: ConnectOptions(timeout: timeout))
        } catch {
            throw Failure(url: url, message: "\(error)")
        }
        defer { connection.close() }
        var received = ByteBuffer(capacity: 16384)
        do {
            try await connection.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nAccept: */*\r\n\r\n"), deadline: deadline)
            while true {
                try await connection.read(into: &received, maximumBytes: 65536, deadline: deadline)
                guard received.readableBytes <= maximumResponseBytes else {
                    throw Failure(url: url, message: "the response exceeds \(maximumResponseBytes) bytes")
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch let error as TransportError where error.kind == .endOfStream || error.kind == .connectionReset {
            // The server closed after its response: the normal end of a `Connection: close` exchange.
        } catch {
            throw Failure(url: url, message: "\(error)")
        }
        let bytes = Array(received.readableBytesView)
        do {
            return try parseResponse(bytes)
        } catch let message {
            throw Failure(url: url, message: message.text)
        }
    }

    struct Message: Error {
        var text: String
    }

    /// Reads a whole HTTP/1.1 response: status line, headers, and a body delimited by
    /// Content-Length, chunked encoding or the end of the connection.
    static func parseResponse(_ bytes: [UInt8]) throws(Message) -> Response {
        guard let headerEnd = find([13, 10, 13, 10], in: bytes) else {
            throw Message(text: bytes.isEmpty ? "the server closed the connection without a response" : "the response has no complete header")
        }
        let head = String(decoding: bytes[..<headerEnd], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = head.first else { throw Message(text: "the response has no status line") }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw Message(text: "malformed status line \"\(statusLine.prefix(80))\"")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Message(text: "malformed header line \"\(line.prefix(80))\"") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(headerEnd + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try dechunk(body)
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard length >= 0, length <= body.count else {
                throw Message(text: "the body ends after \(body.count) of its \(length) bytes")
            }
            body = Array(body.prefix(length))
        }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) throws(Message) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: index) else { throw Message(text: "a chunk size line is cut off") }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Message(text: "malformed chunk size \"\(sizeText.prefix(20))\"")
            }
            index = lineEnd + 2
            if size == 0 { return out }
            guard bytes.count - index >= size else { throw Message(text: "a chunk ends after \(bytes.count - index) of its \(size) bytes") }
            out.append(contentsOf: bytes[index..<(index + size)])
            index += size + 2
        }
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        var index = start
        while index <= bytes.count - needle.count {
            if bytes[index] == needle[0], bytes[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
