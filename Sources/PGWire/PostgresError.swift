import Transport

/// A failure of a PostgreSQL operation: the server's error with all its fields, or a failure of
/// the client around it. Never contains a password.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the error comes from.
    public enum Kind: Sendable, Equatable {
        /// The server answered with an ErrorResponse; ``diagnostics`` holds its fields.
        case server
        /// The query was cancelled (by the caller's task, a query timeout or `statement_timeout`):
        /// the server's 57014 error, fields in ``diagnostics``.
        case queryCancelled
        /// The connection could not be made or was lost; the query may or may not have run.
        case connection
        /// Authentication failed or could not be attempted as configured.
        case authentication
        /// TLS could not be set up as the sslmode asks.
        case tls
        /// The server sent bytes that break the protocol; the connection was closed.
        case protocolViolation
        /// A deadline passed (connecting, or waiting for the server).
        case timedOut
        /// A value could not be encoded or decoded as asked.
        case decoding
        /// The client was used wrongly (a bad connection string, a closed connection …).
        case usage
        /// The calling task was cancelled and the call ended without the server's answer: the
        /// statement was not sent, or it could not be interrupted in time (the message says which).
        case cancelled
    }

    /// The kind of failure.
    public var kind: Kind
    /// What happened, in words.
    public var message: String
    /// The server's fields, for ``Kind/server`` and ``Kind/queryCancelled``.
    public var diagnostics: PostgresDiagnostics?

    /// Creates an error.
    public init(_ kind: Kind, message: String, diagnostics: PostgresDiagnostics? = nil) {
        self.kind = kind
        self.message = SafeText.escaped(message)
        self.diagnostics = diagnostics
    }

    /// An error from the server's ErrorResponse.
    static func server(_ diagnostics: PostgresDiagnostics) -> PostgresError {
        PostgresError(
            diagnostics.sqlState == .queryCanceled ? .queryCancelled : .server, message: diagnostics.message, diagnostics: diagnostics)
    }

    /// The SQLSTATE, when the server sent the error.
    public var sqlState: SQLState? { diagnostics?.sqlState }

    /// The server's description, or the client's message.
    public var description: String {
        if let diagnostics { return SafeText.escaped(diagnostics.description, limit: 4 * SafeText.defaultLimit) }
        return SafeText.escaped(message)
    }
}
