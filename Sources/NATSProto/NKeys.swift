import Transport

/// NATS NKeys: Ed25519 keys written in base32 with a type prefix and a CRC-16 checksum. A seed
/// (`SU…` for a user) signs the server's nonce; its public key (`U…`) identifies the user.
public struct NKeyPair: Sendable {
    /// What a key belongs to; the letter its public form starts with.
    public enum KeyType: UInt8, Sendable {
        /// 'O'
        case `operator` = 112  // 14 << 3
        /// 'A'
        case account = 0  // 0 << 3
        /// 'U'
        case user = 160  // 20 << 3
        /// 'N'
        case server = 104  // 13 << 3
        /// 'C'
        case cluster = 16  // 2 << 3
    }

    static let seedPrefix: UInt8 = 144  // 18 << 3, 'S'

    /// The key's type.
    public let type: KeyType
    private let seed: [UInt8]
    private let publicKeyBytes: [UInt8]

    /// Decodes a seed (`SU…`, `SA…` …); throws when it is not base32, its checksum fails, or it
    /// is not a seed.
    public init(seed text: String) throws(NKeyError) {
        guard let raw = NKeyEncoding.decode(text), raw.count == 2 + 32 else { throw NKeyError("not an NKey seed") }
        guard raw[0] & 0xF8 == Self.seedPrefix else { throw NKeyError("not an NKey seed (wrong prefix)") }
        let typeByte = (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3
        guard let type = KeyType(rawValue: typeByte) else { throw NKeyError("unknown NKey type") }
        let seed = Array(raw[2...])
        guard let publicKey = Crypto.ed25519PublicKey(seed: seed) else { throw NKeyError("the seed is not an Ed25519 key") }
        self.type = type
        self.seed = seed
        self.publicKeyBytes = publicKey
    }

    /// A new random key pair of `type`.
    public static func generate(_ type: KeyType) throws(NKeyError) -> NKeyPair {
        let seed = Crypto.randomBytes(count: 32)
        let prefix: [UInt8] = [Self.seedPrefix | type.rawValue >> 5, (type.rawValue & 31) << 3]
        return try NKeyPair(seed: NKeyEncoding.encode(prefix + seed))
    }

    /// The public key in its text form (`U…` for a user).
    public var publicKey: String { NKeyEncoding.encode([type.rawValue] + publicKeyBytes) }

    /// The seed in its text form (keep it secret).
    public var encodedSeed: String {
        NKeyEncoding.encode([Self.seedPrefix | type.rawValue >> 5, (type.rawValue & 31) << 3] + seed)
    }

    /// Signs `message` (the server's nonce).
    public func sign(_ message: [UInt8]) throws(NKeyError) -> [UInt8] {
        guard let signature = Crypto.ed25519Sign(seed: seed, message: message) else { throw NKeyError("signing failed") }
        return signature
    }

    /// Verifies a signature against a public key in text form.
    public static func verify(publicKey: String, message: [UInt8], signature: [UInt8]) -> Bool {
        guard let raw = NKeyEncoding.decode(publicKey), raw.count == 33 else { return false }
        return Crypto.ed25519Verify(publicKey: Array(raw[1...]), message: message, signature: signature)
    }
}

/// A seed or key that cannot be used.
public struct NKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong (never the seed itself).
    public var message: String
    init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// RFC 4648 base32 without padding, with a CRC-16/XMODEM of the raw bytes appended (little-endian).
enum NKeyEncoding {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ raw: [UInt8]) -> String {
        let checksum = crc16(raw)
        let bytes = raw + [UInt8(checksum & 0xFF), UInt8(checksum >> 8)]
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int(buffer >> UInt32(bits - 5) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The raw bytes without the checksum; nil if not base32 or the checksum fails.
    static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = character - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = buffer << 5 | UInt32(value)
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8(buffer >> UInt32(bits - 8) & 0xFF))
                bits -= 8
            }
        }
        guard bytes.count >= 3 else { return nil }
        let raw = Array(bytes.dropLast(2))
        let checksum = UInt16(bytes[bytes.count - 2]) | UInt16(bytes[bytes.count - 1]) << 8
        return crc16(raw) == checksum ? raw : nil
    }

    /// CRC-16/XMODEM (polynomial 0x1021, initial value 0).
    static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? crc << 1 ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}
