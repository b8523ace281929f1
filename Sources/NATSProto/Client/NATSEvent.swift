/// Something that happened to a client's connection, delivered on ``NATSClient/events``.
public enum NATSEvent: Sendable, Equatable {
    /// The connection to `server` was lost (`reason` says why); the client reconnects if allowed.
    case disconnected(server: String, reason: NATSError?)
    /// The client is connected again, to `server`, with every subscription restored.
    case reconnected(server: String)
    /// The server announced it is shutting down (lame-duck mode); the client moves when it goes.
    case lameDuck(server: String)
    /// The server reported an error that did not close the connection (e.g. a permissions violation).
    case serverError(NATSError)
    /// A subscription was restored after a reconnect: messages published while the client was
    /// away may be lost for it (see ``NATSSubscription/gapCount``).
    case subscriptionGap(subject: String, sid: UInt64)
    /// A subscription dropped messages because its consumer fell behind its pending limits.
    case slowConsumer(subject: String, sid: UInt64, dropped: Int)
    /// The cluster advertised servers that were added to the pool.
    case serversDiscovered([String])
    /// The client closed (`reason` is nil for a close that was asked for).
    case closed(reason: NATSError?)
}
