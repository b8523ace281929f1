import Transport

/// A pipeline the connection failed in the middle of: what became of each command, so that the
/// caller retries only what is safe to retry.
public struct RedisPipelineError: Error, Sendable, CustomStringConvertible {
    /// One command's fate.
    public enum Outcome: Sendable, Equatable {
        /// The server answered (an error reply is an answer too).
        case answered(RESPValue)
        /// The server answered with something other than an error, which the pipeline did not
        /// keep (``RedisConnection/pipelineDiscardingReplies(_:timeout:)``).
        case answeredAndDiscarded
        /// It was written (or was being written) and no reply came: it may or may not have run.
        case unknown
        /// It never left the client: it did not run.
        case notSent
    }

    /// The outcome of each command, in the pipeline's order.
    public var outcomes: [Outcome]
    /// The connection's failure.
    public var cause: RedisError

    public init(outcomes: [Outcome], cause: RedisError) {
        self.outcomes = outcomes
        self.cause = cause
    }

    public var description: String {
        var answered = 0
        var unknown = 0
        var notSent = 0
        for outcome in outcomes {
            switch outcome {
            case .answered, .answeredAndDiscarded: answered += 1
            case .unknown: unknown += 1
            case .notSent: notSent += 1
            }
        }
        return "pipeline of \(outcomes.count) interrupted (\(cause)): \(answered) answered, \(unknown) unknown, \(notSent) not sent"
    }
}

/// An error reply from the server, or a failure of the client around it.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the error comes from.
    public enum Kind: Sendable, Equatable {
        /// The server answered with an error reply; ``code`` holds its prefix.
        case server
        /// The reply had another type than the caller expected.
        case unexpectedReply
        /// The connection failed or closed; the command may or may not have run.
        case connection
        /// The server sent bytes that are not RESP.
        case protocolViolation
        /// The operation's deadline passed.
        case timedOut
        /// The calling task was cancelled; the command may or may not have run, and its reply
        /// is discarded.
        case cancelled
        /// The client was used wrongly (a bad URL, a command that needs another API …).
        case usage
        /// A transaction was aborted because a WATCHed key changed (EXEC answered null).
        case transactionAborted
    }

    /// The kind of failure.
    public var kind: Kind
    /// For server errors, the first word of the reply: ERR, WRONGTYPE, NOAUTH, NOPERM, MOVED …
    public var code: String
    /// The rest of the error text, or a description of the failure.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, code: String = "", message: String) {
        self.kind = kind
        self.code = SafeText.escaped(code, limit: 64)
        self.message = SafeText.escaped(message)
    }

    /// An error from an error reply's text, split into its code and message.
    static func server(_ text: String) -> RedisError {
        let parts = text.split(separator: " ", maxSplits: 1)
        let code = parts.first.map(String.init) ?? "ERR"
        let isCode = !code.isEmpty && code.allSatisfy { $0.isUppercase || $0 == "_" || $0.isNumber }
        return RedisError(.server, code: isCode ? code : "ERR", message: isCode ? (parts.count > 1 ? String(parts[1]) : "") : text)
    }

    /// Named codes the services act on.
    public static let wrongType = "WRONGTYPE"
    /// Authentication required.
    public static let noAuth = "NOAUTH"
    /// ACL denied the command.
    public static let noPermission = "NOPERM"
    /// The script is not in the server's cache.
    public static let noScript = "NOSCRIPT"
    /// A cluster redirect.
    public static let moved = "MOVED"

    /// `code message`, or the description of a client-side failure.
    public var description: String {
        switch kind {
        case .server: code.isEmpty ? SafeText.escaped(message) : "\(SafeText.escaped(code, limit: 64)) \(SafeText.escaped(message))"
        default: SafeText.escaped(message)
        }
    }
}
