import Transport

/// Unique identifiers for inboxes and messages, in the NATS NUID layout: 22 base-62 characters,
/// a 12-character random prefix and a 10-character sequence that grows by a random step. The
/// prefix is drawn again from the system's secure generator when the sequence runs out, so ids
/// do not repeat and cannot be predicted from each other across prefixes. Not thread-safe: keep
/// one per connection, under its lock.
public struct NUID: Sendable {
    static let digits = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let prefixLength = 12
    static let sequenceLength = 10
    /// 62^10.
    static let maximumSequence: Int64 = 839_299_365_868_340_224
    static let minimumIncrement: Int64 = 33
    static let maximumIncrement: Int64 = 333

    private var prefix: [UInt8] = []
    private var sequence: Int64 = 0
    private var increment: Int64 = 0
    private var generator = SystemRandomNumberGenerator()

    /// A generator with a fresh random prefix and sequence.
    public init() {
        randomizePrefix()
        resetSequence()
    }

    /// The next identifier.
    public mutating func next() -> String {
        sequence += increment
        if sequence >= Self.maximumSequence {
            randomizePrefix()
            resetSequence()
        }
        var out = prefix
        out.reserveCapacity(Self.prefixLength + Self.sequenceLength)
        var value = sequence
        var tail = [UInt8](repeating: Self.digits[0], count: Self.sequenceLength)
        for index in stride(from: Self.sequenceLength - 1, through: 0, by: -1) {
            tail[index] = Self.digits[Int(value % 62)]
            value /= 62
        }
        out += tail
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func randomizePrefix() {
        prefix = Crypto.randomBytes(count: Self.prefixLength).map { Self.digits[Int($0) % 62] }
    }

    private mutating func resetSequence() {
        sequence = Int64.random(in: 0..<Self.maximumSequence, using: &generator)
        increment = Int64.random(in: Self.minimumIncrement...Self.maximumIncrement, using: &generator)
    }
}
