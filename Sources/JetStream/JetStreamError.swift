import NATSProto

/// A failed JetStream operation: the API's own error (its HTTP-like `code` and its `err_code`),
/// or a failure around it. The message says what was asked and what went wrong.
public struct JetStreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the failure comes from.
    public enum Kind: Sendable, Equatable {
        /// The JetStream API answered with an error; ``code`` and ``errorCode`` hold its numbers.
        case api
        /// No JetStream answered: it is not enabled for the account, or has no leader (503).
        case noResponders
        /// No answer within the timeout.
        case timedOut
        /// The answer could not be decoded (not the JSON the API defines).
        case decoding
        /// The call was made wrongly (a bad name, a feature the server lacks …); nothing was sent.
        case usage
        /// The NATS connection failed or was closed.
        case connection
        /// The connection broke after the request was sent and before its answer: it may have
        /// been carried out. A publish with a message id is retried by itself.
        case interrupted
        /// The calling task was cancelled.
        case cancelled
    }

    /// The kind of failure.
    public var kind: Kind
    /// The API's HTTP-like status (400, 404, 503 …), for ``Kind/api``.
    public var code: Int
    /// The API's error code (10059 stream not found …), for ``Kind/api``; 0 otherwise.
    public var errorCode: Int
    /// What happened, in words (the server's description for API errors).
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, code: Int = 0, errorCode: Int = 0, message: String) {
        self.kind = kind
        self.code = code
        self.errorCode = errorCode
        self.message = SafeText.escaped(message)
    }

    /// The server's words with its codes, or the client's message.
    public var description: String {
        kind == .api ? "\(SafeText.escaped(message)) (code \(code), err_code \(errorCode))" : SafeText.escaped(message)
    }

    /// Whether this is the API error `errorCode`.
    public func `is`(_ errorCode: ErrorCode) -> Bool { kind == .api && self.errorCode == errorCode.rawValue }

    /// The API's error codes a caller most often tells apart (`err_code` on the wire).
    public struct ErrorCode: RawRepresentable, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// 10014: consumer not found.
        public static let consumerNotFound = ErrorCode(rawValue: 10014)
        /// 10023: insufficient resources.
        public static let insufficientResources = ErrorCode(rawValue: 10023)
        /// 10037: no message found.
        public static let noMessageFound = ErrorCode(rawValue: 10037)
        /// 10039: JetStream not enabled for the account.
        public static let notEnabledForAccount = ErrorCode(rawValue: 10039)
        /// 10054: message too large.
        public static let messageTooLarge = ErrorCode(rawValue: 10054)
        /// 10058: stream name already in use with a different configuration.
        public static let streamNameInUse = ErrorCode(rawValue: 10058)
        /// 10059: stream not found.
        public static let streamNotFound = ErrorCode(rawValue: 10059)
        /// 10070: wrong last msg id (`Nats-Expected-Last-Msg-Id`).
        public static let wrongLastMessageID = ErrorCode(rawValue: 10070)
        /// 10071: wrong last sequence (`Nats-Expected-Last-Sequence` or `-Last-Subject-Sequence`).
        public static let wrongLastSequence = ErrorCode(rawValue: 10071)
        /// 10076: JetStream not enabled.
        public static let notEnabled = ErrorCode(rawValue: 10076)
        /// 10148: consumer already exists (with another configuration).
        public static let consumerExists = ErrorCode(rawValue: 10148)
    }

    /// The error for a core NATS failure while talking to JetStream.
    static func from(_ error: NATSError, doing activity: String) -> JetStreamError {
        switch error.kind {
        case .noResponders:
            return JetStreamError(.noResponders, code: 503, message: "\(activity): no JetStream answered (not enabled, or no leader): \(error.message)")
        case .timedOut: return JetStreamError(.timedOut, message: "\(activity): \(error.message)")
        case .cancelled: return JetStreamError(.cancelled, message: "\(activity): \(error.message)")
        case .interrupted: return JetStreamError(.interrupted, message: "\(activity): \(error.message)")
        case .usage, .maximumPayloadExceeded: return JetStreamError(.usage, message: "\(activity): \(error.message)")
        default: return JetStreamError(.connection, message: "\(activity): \(error.message)")
        }
    }
}
