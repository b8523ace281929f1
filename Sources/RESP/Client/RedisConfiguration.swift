import Transport

/// How to reach and log in to a Redis server; usually parsed from a `redis://` or `rediss://` URL.
public struct RedisConfiguration: Sendable {
    /// Host name or IP address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// ACL user name (nil: the default user).
    public var user: String?
    /// Password (nil: no AUTH).
    public var password: String?
    /// Database number for SELECT.
    public var database: Int
    /// TLS context for `rediss://` (nil: plaintext).
    public var tls: TLSContext?
    /// Connect timeout.
    public var connectTimeout: Duration
    /// Deadline for each command's reply (nil: none; blocking commands get their own).
    public var commandTimeout: Duration?
    /// CLIENT SETNAME value.
    public var clientName: String?
    /// Parser limits for replies.
    public var limits: RESPParser.Limits

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0,
        tls: TLSContext? = nil, connectTimeout: Duration = .seconds(5), commandTimeout: Duration? = nil,
        clientName: String? = nil, limits: RESPParser.Limits = .init()
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.clientName = clientName
        self.limits = limits
    }

    /// Parses `redis://[user[:password]@]host[:port][/db][?timeout=SECONDS&connect_timeout=SECONDS&name=NAME]`;
    /// `rediss://` turns TLS on with `tls` (the system trust store by default).
    public init(url: String, tls: TLSConfiguration = TLSConfiguration()) throws(RedisError) {
        self.init()
        let redacted = Redaction.url(url, bareUserInfoIsSecret: true)
        let scheme: String
        var rest: Substring
        if url.hasPrefix("redis://") {
            scheme = "redis"
            rest = url.dropFirst(8)
        } else if url.hasPrefix("rediss://") {
            scheme = "rediss"
            rest = url.dropFirst(9)
        } else {
            throw RedisError(.usage, message: "not a redis:// or rediss:// URL: \(redacted)")
        }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let name = Self.percentDecode(userInfo[..<colon])
                user = name.isEmpty ? nil : name
                password = Self.percentDecode(userInfo[userInfo.index(after: colon)...])
            } else if !userInfo.isEmpty {
                // redis://password@host is how some clients pass a password alone.
                password = Self.percentDecode(userInfo)
            }
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisError(.usage, message: "unterminated IPv6 address in \(redacted)") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") { rest = rest.dropFirst() } else { rest = "" }
            if !rest.isEmpty {
                guard let number = Int(rest), (1...65535).contains(number) else { throw RedisError(.usage, message: "bad port in \(redacted)") }
                port = number
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else {
                throw RedisError(.usage, message: "bad port in \(redacted)")
            }
            port = number
        } else if !rest.isEmpty {
            host = String(rest)
        }
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else { throw RedisError(.usage, message: "bad database number in \(redacted)") }
            database = number
        }
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let value = Self.percentDecode(pair[1])
            switch pair[0] {
            case "timeout":
                guard let seconds = Double(value), seconds > 0 else { throw RedisError(.usage, message: "bad timeout in \(redacted)") }
                commandTimeout = .milliseconds(Int64(seconds * 1000))
            case "connect_timeout":
                guard let seconds = Double(value), seconds > 0 else { throw RedisError(.usage, message: "bad connect_timeout in \(redacted)") }
                connectTimeout = .milliseconds(Int64(seconds * 1000))
            case "name":
                clientName = value
            case "db":
                guard let number = Int(value), number >= 0 else { throw RedisError(.usage, message: "bad db in \(redacted)") }
                database = number
            default:
                throw RedisError(.usage, message: "unknown option \(pair[0]) in \(redacted)")
            }
        }
        if scheme == "rediss" {
            do {
                self.tls = try TLSContext(configuration: tls)
            } catch {
                throw RedisError(.usage, message: "TLS configuration failed: \(error)")
            }
        }
    }

    static func percentDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
