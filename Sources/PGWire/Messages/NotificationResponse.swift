import Transport

/// 'A': a NOTIFY on a channel this session listens to.
public struct PostgresNotification: Sendable, Equatable {
    /// The notifying backend's process id.
    public var processID: Int32
    /// The channel name.
    public var channel: String
    /// The payload (empty when none was given).
    public var payload: String

    /// Creates a notification.
    public init(processID: Int32, channel: String, payload: String) {
        self.processID = processID
        self.channel = channel
        self.payload = payload
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> PostgresNotification {
        let processID = try body.readBody(Int32.self, "process id")
        let channel = try body.readBodyCString("channel")
        return PostgresNotification(processID: processID, channel: channel, payload: try body.readBodyCString("payload"))
    }
}
