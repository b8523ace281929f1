/// Session state a user's statements left on a connection, read from the command tags the server
/// sends (`LISTEN`, `SET`, `DECLARE CURSOR` …), so that a pool can undo exactly that before the
/// next user, rather than a full `DISCARD ALL` round trip after every use.
///
/// What command tags cannot show — a session-level advisory lock taken in a `SELECT`, a
/// temporary table — is not tracked: a pool that must be sure of those resets with
/// ``PostgresConnection/resetSession()`` every time.
public struct PostgresSessionChanges: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `LISTEN`: notifications would reach the next user.
    public static let listening = PostgresSessionChanges(rawValue: 1 << 0)
    /// `SET` / `RESET` of a run-time parameter, `SET ROLE` and `SET SESSION AUTHORIZATION` included.
    public static let settings = PostgresSessionChanges(rawValue: 1 << 1)
    /// `DECLARE … CURSOR WITH HOLD` outlives its transaction.
    public static let cursors = PostgresSessionChanges(rawValue: 1 << 2)
    /// `PREPARE`: a named statement the user made (the client's own cache is not counted).
    public static let preparedStatements = PostgresSessionChanges(rawValue: 1 << 3)

    /// Updates the changes for a completed statement's tag.
    mutating func record(commandTag tag: String) {
        switch tag {
        case "LISTEN": insert(.listening)
        case "UNLISTEN": break  // one channel may remain; only `UNLISTEN *` is known to clear
        case "SET", "RESET": insert(.settings)
        case "DECLARE CURSOR": insert(.cursors)
        case "PREPARE": insert(.preparedStatements)
        case "DISCARD ALL": self = []
        default: break
        }
    }
}
