import Transport

/// 'K': the process id and secret key that a CancelRequest must quote.
public struct BackendKeyData: Sendable, Equatable {
    /// The backend's process id.
    public var processID: Int32
    /// The secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
    public var secretKey: [UInt8]

    /// Creates key data.
    public init(processID: Int32, secretKey: [UInt8]) {
        self.processID = processID
        self.secretKey = secretKey
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> BackendKeyData {
        let processID = try body.readBody(Int32.self, "process id")
        guard (4...256).contains(body.readableBytes), let key = body.readBytes(count: body.readableBytes) else {
            throw MalformedMessage("secret key of \(body.readableBytes) bytes; 4 to 256 expected")
        }
        return BackendKeyData(processID: processID, secretKey: key)
    }
}
