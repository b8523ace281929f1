/// The parts of a server URL of the form
/// `scheme://[user[:password]@][host[:port][,host[:port]…]][/path][?key=value&…]`, percent-decoded.
/// Hosts may be `[IPv6]` literals. What each part means is the protocol client's business.
public struct ConnectionURL: Sendable, Equatable {
    /// One `host[:port]` entry.
    public struct HostPort: Sendable, Equatable {
        /// The host, decoded (brackets removed from an IPv6 literal).
        public var host: String
        /// The port, when one was given.
        public var port: Int?

        /// Creates an entry.
        public init(host: String, port: Int?) {
            self.host = host
            self.port = port
        }
    }

    /// The scheme, lower-cased, without `://`.
    public var scheme: String
    /// The user info before the first colon (nil when there is no `@`).
    public var user: String?
    /// The user info after the first colon (nil when there is no colon).
    public var password: String?
    /// The host entries, in order (empty when the authority names none).
    public var hosts: [HostPort]
    /// The path after the first `/`, decoded ("" when absent).
    public var path: String
    /// The query's `key=value` pairs, decoded, in order.
    public var query: [(key: String, value: String)]

    /// Parses `text`. Errors never quote the user info, so a password cannot leak through them.
    public init(parsing text: String) throws(ConnectionURLError) {
        guard let schemeEnd = text.firstRange(of: "://") else { throw ConnectionURLError("no scheme:// prefix") }
        scheme = text[..<schemeEnd.lowerBound].lowercased()
        var rest = text[schemeEnd.upperBound...]
        var queryText: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = try Self.decode(rest[rest.index(after: slash)...], "path")
            rest = rest[..<slash]
        }
        user = nil
        password = nil
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], "user name")
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], "password")
            } else {
                user = try Self.decode(userInfo, "user name")
            }
        }
        hosts = []
        if !rest.isEmpty {
            for entry in rest.split(separator: ",", omittingEmptySubsequences: false) {
                var host = entry
                var portText: Substring = ""
                if host.hasPrefix("[") {
                    guard let close = host.firstIndex(of: "]") else { throw ConnectionURLError("unterminated IPv6 address") }
                    let after = host[host.index(after: close)...]
                    host = host[host.index(after: host.startIndex)..<close]
                    if after.hasPrefix(":") {
                        portText = after.dropFirst()
                    } else if !after.isEmpty {
                        throw ConnectionURLError("unexpected text after an IPv6 address")
                    }
                } else if let colon = host.lastIndex(of: ":") {
                    portText = host[host.index(after: colon)...]
                    host = host[..<colon]
                }
                var port: Int?
                if !portText.isEmpty {
                    guard let number = Int(portText), (1...65535).contains(number) else {
                        throw ConnectionURLError("port \"\(portText.prefix(12))\" is not in 1...65535")
                    }
                    port = number
                }
                hosts.append(HostPort(host: try Self.decode(host, "host"), port: port))
            }
        }
        query = []
        for item in queryText.split(separator: "&") {
            guard let equals = item.firstIndex(of: "=") else {
                throw ConnectionURLError("query parameter \"\(item.prefix(40))\" has no \"=\"")
            }
            query.append((try Self.decode(item[..<equals], "query key"), try Self.decode(item[item.index(after: equals)...], "query value")))
        }
    }

    public static func == (lhs: ConnectionURL, rhs: ConnectionURL) -> Bool {
        lhs.scheme == rhs.scheme && lhs.user == rhs.user && lhs.password == rhs.password && lhs.hosts == rhs.hosts
            && lhs.path == rhs.path && lhs.query.elementsEqual(rhs.query, by: { $0 == $1 })
    }

    /// Percent-decodes `text` (RFC 3986 §2.1); the result must be UTF-8.
    public static func decode(_ text: Substring, _ part: String = "URL") throws(ConnectionURLError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(ASCIIHex.value), let low = iterator.next().flatMap(ASCIIHex.value) else {
                throw ConnectionURLError("invalid percent-encoding in the \(part)")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw ConnectionURLError("the \(part) is not UTF-8 once percent-decoded")
        }
        return decoded
    }
}

/// A URL that cannot be parsed; the message never contains the user info.
public struct ConnectionURLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    init(_ message: String) { self.message = SafeText.escaped(message) }
    /// The message.
    public var description: String { SafeText.escaped(message) }
}

/// Hexadecimal digits in ASCII.
public enum ASCIIHex {
    /// The value of one hex digit (either case), or nil.
    @inlinable
    public static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Decimal digits in ASCII.
public enum ASCIIDecimal {
    /// Writes the digits of `value` (1 to 20 bytes) at `target`, which must have room for 20;
    /// returns how many were written. For encoders that fill a region reserved in advance.
    @inlinable
    public static func write(_ value: UInt64, to target: UnsafeMutableRawPointer) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        var index = digits - 1
        while index >= 0 {
            target.storeBytes(of: UInt8(truncatingIfNeeded: remaining % 10) &+ UInt8(ascii: "0"), toByteOffset: index, as: UInt8.self)
            remaining /= 10
            index -= 1
        }
        return digits
    }
}
