import Transport

/// 'v': the server speaks an older minor protocol version or ignored some startup options.
public struct NegotiateProtocolVersion: Sendable, Equatable {
    /// The newest minor version the server supports.
    public var newestMinorVersion: Int32
    /// The `_pq_.` options the server did not recognise.
    public var unrecognizedOptions: [String]

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> NegotiateProtocolVersion {
        // The server sends either the minor version or the whole version number (3 << 16 | minor).
        let minor = try body.readBody(Int32.self, "minor version") & 0xFFFF
        let count = try body.readBody(Int32.self, "option count")
        guard count >= 0, Int(count) <= body.readableBytes else { throw MalformedMessage("option count \(count) does not fit") }
        var options: [String] = []
        for _ in 0..<count { options.append(try body.readBodyCString("option name")) }
        return NegotiateProtocolVersion(newestMinorVersion: minor, unrecognizedOptions: options)
    }
}
