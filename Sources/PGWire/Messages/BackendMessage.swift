import Transport

/// A message from the server. Row cells and COPY data are slices of the read buffer, not copies.
public enum BackendMessage: Sendable, Equatable {
    /// 'R': an authentication request or its outcome.
    case authentication(AuthenticationRequest)
    /// 'K': the key that cancels this session's queries.
    case backendKeyData(BackendKeyData)
    /// '2'
    case bindComplete
    /// '3'
    case closeComplete
    /// 'C': the command tag (`INSERT 0 1`, `SELECT 3` …).
    case commandComplete(String)
    /// 'd'
    case copyData(ByteBuffer)
    /// 'c'
    case copyDone
    /// 'G'
    case copyInResponse(CopyResponse)
    /// 'H'
    case copyOutResponse(CopyResponse)
    /// 'W'
    case copyBothResponse(CopyResponse)
    /// 'D'
    case dataRow(DataRow)
    /// 'I': the query string was empty.
    case emptyQueryResponse
    /// 'E'
    case errorResponse(PostgresDiagnostics)
    /// 'v'
    case negotiateProtocolVersion(NegotiateProtocolVersion)
    /// 'n'
    case noData
    /// 'N'
    case noticeResponse(PostgresDiagnostics)
    /// 'A'
    case notificationResponse(PostgresNotification)
    /// 't': the parameter types of a prepared statement.
    case parameterDescription([UInt32])
    /// 'S': a run-time parameter's current value.
    case parameterStatus(name: String, value: String)
    /// '1'
    case parseComplete
    /// 's': Execute stopped at its row limit.
    case portalSuspended
    /// 'Z': the server is ready for the next query; the session's transaction status.
    case readyForQuery(TransactionStatus)
    /// 'T'
    case rowDescription(RowDescription)

    /// Message type bytes, with their ASCII letter.
    enum ID: UInt8 {
        case authentication = 0x52  // R
        case backendKeyData = 0x4B  // K
        case bindComplete = 0x32  // 2
        case closeComplete = 0x33  // 3
        case commandComplete = 0x43  // C
        case copyData = 0x64  // d
        case copyDone = 0x63  // c
        case copyInResponse = 0x47  // G
        case copyOutResponse = 0x48  // H
        case copyBothResponse = 0x57  // W
        case dataRow = 0x44  // D
        case emptyQueryResponse = 0x49  // I
        case errorResponse = 0x45  // E
        case negotiateProtocolVersion = 0x76  // v
        case noData = 0x6E  // n
        case noticeResponse = 0x4E  // N
        case notificationResponse = 0x41  // A
        case parameterDescription = 0x74  // t
        case parameterStatus = 0x53  // S
        case parseComplete = 0x31  // 1
        case portalSuspended = 0x73  // s
        case readyForQuery = 0x5A  // Z
        case rowDescription = 0x54  // T
    }

    /// A readable name for a message type byte.
    static func name(of type: UInt8) -> String {
        guard let id = ID(rawValue: type) else {
            let printable = (0x20..<0x7F).contains(type) ? " '\(Character(Unicode.Scalar(type)))'" : ""
            return "unknown message 0x\(String(type, radix: 16))\(printable)"
        }
        return "\(id) '\(Character(Unicode.Scalar(type)))'"
    }
}

/// The transaction status a ReadyForQuery reports.
public enum TransactionStatus: UInt8, Sendable, Equatable {
    /// 'I': not in a transaction block.
    case idle = 0x49
    /// 'T': in a transaction block.
    case inTransaction = 0x54
    /// 'E': in a failed transaction block; queries are refused until it ends.
    case failed = 0x45
}

/// Splits the byte stream from the server into messages.
///
/// ``decode(_:)`` returns nil (consuming nothing) until a whole message has arrived, so a message
/// split across reads is never decoded twice. Every length is checked before anything is allocated.
public struct BackendMessageDecoder: Sendable {
    /// The largest message body accepted. The server's own limit for a value is 1 GiB.
    public var maximumMessageSize: Int
    /// Bytes consumed since the decoder started, for error positions.
    public private(set) var streamOffset = 0

    /// Creates a decoder.
    public init(maximumMessageSize: Int = 1 << 30) {
        self.maximumMessageSize = maximumMessageSize
    }

    /// The next message, or nil when more bytes are needed.
    public mutating func decode(_ buffer: inout ByteBuffer) throws(PostgresProtocolError) -> BackendMessage? {
        guard let type = buffer.getInteger(at: 0, as: UInt8.self), let length = buffer.getInteger(at: 1, as: Int32.self) else {
            return nil
        }
        guard length >= 4 else {
            throw PostgresProtocolError(messageType: type, offset: streamOffset, message: "message length \(length) is below 4")
        }
        let bodyLength = Int(length) - 4
        guard bodyLength <= maximumMessageSize else {
            throw PostgresProtocolError(
                messageType: type, offset: streamOffset,
                message: "message of \(bodyLength) bytes exceeds the limit of \(maximumMessageSize)")
        }
        guard buffer.readableBytes - 5 >= bodyLength else { return nil }
        guard let id = BackendMessage.ID(rawValue: type) else {
            throw PostgresProtocolError(messageType: type, offset: streamOffset, message: "no such backend message type")
        }
        buffer.moveReaderIndex(forwardBy: 5)
        guard var body = buffer.readSlice(count: bodyLength) else {
            throw PostgresProtocolError(messageType: type, offset: streamOffset, message: "body shorter than announced")
        }
        let message: BackendMessage
        do throws(MalformedMessage) {
            message = try Self.decodeBody(id, &body)
            guard body.readableBytes == 0 else { throw MalformedMessage("\(body.readableBytes) bytes left over after the message") }
        } catch {
            throw PostgresProtocolError(messageType: type, offset: streamOffset, message: error.reason)
        }
        streamOffset += bodyLength + 5
        return message
    }

    private static func decodeBody(_ id: BackendMessage.ID, _ body: inout ByteBuffer) throws(MalformedMessage) -> BackendMessage {
        switch id {
        case .dataRow: return .dataRow(try DataRow.decode(&body))
        case .commandComplete: return .commandComplete(try body.readBodyCString("command tag"))
        case .readyForQuery:
            let status = try body.readBody(UInt8.self, "transaction status")
            guard let value = TransactionStatus(rawValue: status) else {
                throw MalformedMessage("unknown transaction status 0x\(String(status, radix: 16))")
            }
            return .readyForQuery(value)
        case .rowDescription: return .rowDescription(try RowDescription.decode(&body))
        case .bindComplete: return .bindComplete
        case .parseComplete: return .parseComplete
        case .closeComplete: return .closeComplete
        case .noData: return .noData
        case .portalSuspended: return .portalSuspended
        case .emptyQueryResponse: return .emptyQueryResponse
        case .copyDone: return .copyDone
        case .copyData: return .copyData(try body.readBodySlice(count: body.readableBytes, "copy data"))
        case .authentication: return .authentication(try AuthenticationRequest.decode(&body))
        case .backendKeyData: return .backendKeyData(try BackendKeyData.decode(&body))
        case .errorResponse: return .errorResponse(try PostgresDiagnostics.decode(&body))
        case .noticeResponse: return .noticeResponse(try PostgresDiagnostics.decode(&body))
        case .parameterStatus:
            let name = try body.readBodyCString("parameter name")
            return .parameterStatus(name: name, value: try body.readBodyCString("parameter value"))
        case .parameterDescription:
            let count = try body.readBodyCount("parameter count", minimumBytesEach: 4)
            var types: [UInt32] = []
            types.reserveCapacity(count)
            for _ in 0..<count { types.append(try body.readBody(UInt32.self, "parameter type")) }
            return .parameterDescription(types)
        case .notificationResponse: return .notificationResponse(try PostgresNotification.decode(&body))
        case .copyInResponse: return .copyInResponse(try CopyResponse.decode(&body))
        case .copyOutResponse: return .copyOutResponse(try CopyResponse.decode(&body))
        case .copyBothResponse: return .copyBothResponse(try CopyResponse.decode(&body))
        case .negotiateProtocolVersion: return .negotiateProtocolVersion(try NegotiateProtocolVersion.decode(&body))
        }
    }
}
