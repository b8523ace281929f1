import COpenSSL

/// The hashes, MACs and key derivations the protocols' authentication needs, through libcrypto.
/// Every function takes and returns plain bytes; none keeps state between calls.
public enum Crypto {
    /// SHA-256 of `bytes` (32 bytes).
    public static func sha256<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        digest(bytes, EVP_sha256())
    }

    /// MD5 of `bytes` (16 bytes). Only for protocols that still ask for it (PostgreSQL `md5` auth).
    public static func md5<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        digest(bytes, EVP_md5())
    }

    /// HMAC-SHA-256 of `message` under `key` (32 bytes).
    public static func hmacSHA256<Key: Collection<UInt8>, Message: Collection<UInt8>>(key: Key, message: Message) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let keyBytes = Array(key)
        let messageBytes = Array(message)
        let result = keyBytes.withUnsafeBytes { keyBuffer in
            messageBytes.withUnsafeBufferPointer { messageBuffer in
                HMAC(EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count), messageBuffer.baseAddress, messageBuffer.count, &output, &length)
            }
        }
        // HMAC fails only when libcrypto cannot allocate; there is no answer to give then.
        precondition(result != nil, "HMAC-SHA-256 failed: \(OpenSSLErrors.drain())")  // safe: only an allocation failure in libcrypto
        return Array(output.prefix(Int(length)))
    }

    /// PBKDF2 with HMAC-SHA-256 (RFC 8018): a `length`-byte key from `password` and `salt`.
    /// Returns nil when libcrypto refuses the parameters (an iteration count below 1).
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) -> [UInt8]? {
        guard iterations >= 1, iterations <= Int(Int32.max), length >= 1 else { return nil }
        var output = [UInt8](repeating: 0, count: length)
        let result = password.withUnsafeBufferPointer { passwordBuffer in
            salt.withUnsafeBufferPointer { saltBuffer in
                passwordBuffer.withMemoryRebound(to: CChar.self) { passwordChars in
                    PKCS5_PBKDF2_HMAC(
                        passwordChars.baseAddress, Int32(passwordBuffer.count), saltBuffer.baseAddress, Int32(saltBuffer.count),
                        Int32(iterations), EVP_sha256(), Int32(length), &output)
                }
            }
        }
        return result == 1 ? output : nil
    }

    /// The Ed25519 public key (32 bytes) of a 32-byte private seed; nil for a seed of another size.
    public static func ed25519PublicKey(seed: [UInt8]) -> [UInt8]? {
        guard seed.count == 32, let key = seed.withUnsafeBufferPointer({
            EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
        }) else { return nil }
        defer { EVP_PKEY_free(key) }
        var publicKey = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(key, &publicKey, &length) == 1, length == 32 else { return nil }
        return publicKey
    }

    /// The Ed25519 signature (64 bytes) of `message` under a 32-byte private seed (RFC 8032).
    public static func ed25519Sign(seed: [UInt8], message: [UInt8]) -> [UInt8]? {
        guard seed.count == 32, let key = seed.withUnsafeBufferPointer({
            EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
        }) else { return nil }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1 else { return nil }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = 64
        let result = message.withUnsafeBufferPointer { EVP_DigestSign(context, &signature, &length, $0.baseAddress, $0.count) }
        return result == 1 && length == 64 ? signature : nil
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`.
    public static func ed25519Verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == 32, signature.count == 64, let key = publicKey.withUnsafeBufferPointer({
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
        }) else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
        return message.withUnsafeBufferPointer { EVP_DigestVerify(context, signature, 64, $0.baseAddress, $0.count) } == 1
    }

    /// `count` bytes from the operating system's cryptographically secure generator.
    public static func randomBytes(count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var generator = SystemRandomNumberGenerator()
        if count > 0, RAND_bytes(&bytes, Int32(count)) != 1 {
            // RAND_bytes fails only without an entropy source; the system generator reads getrandom.
            for index in bytes.indices { bytes[index] = generator.next() }
        }
        return bytes
    }

    /// Lower-case hexadecimal of `bytes`.
    public static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Constant-time comparison of two byte strings (false when their lengths differ).
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    private static func digest<Bytes: Collection<UInt8>>(_ bytes: Bytes, _ type: OpaquePointer?) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let input = Array(bytes)
        let result = input.withUnsafeBufferPointer { EVP_Digest($0.baseAddress, $0.count, &output, &length, type, nil) }
        // EVP_Digest fails only when libcrypto cannot allocate or the digest is unavailable.
        precondition(result == 1, "digest failed: \(OpenSSLErrors.drain())")  // safe: only an allocation failure in libcrypto
        return Array(output.prefix(Int(length)))
    }
}

/// Base64 (RFC 4648, standard alphabet, padded), as SCRAM and the NATS JWTs use it.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes `bytes`.
    public static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        encode(bytes, alphabet: alphabet, padded: true)
    }

    /// Encodes `bytes` with the URL and file-name alphabet (`-` and `_`, RFC 4648 §5), padded
    /// or not: Go's `base64.URLEncoding` and `RawURLEncoding`.
    public static func encodeURLSafe<Bytes: Collection<UInt8>>(_ bytes: Bytes, padded: Bool) -> String {
        encode(bytes, alphabet: urlAlphabet, padded: padded)
    }

    private static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes, alphabet: [UInt8], padded: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let word = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            out.append(alphabet[Int(word >> 18 & 63)])
            out.append(alphabet[Int(word >> 12 & 63)])
            if second != nil { out.append(alphabet[Int(word >> 6 & 63)]) } else if padded { out.append(UInt8(ascii: "=")) }
            if third != nil { out.append(alphabet[Int(word & 63)]) } else if padded { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded standard Base64; nil for any character outside the alphabet, a wrong length
    /// or misplaced padding.
    public static func decode(_ string: String) -> [UInt8]? {
        let input = Array(string.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            var word: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let character = input[index + offset]
                let value: UInt32
                switch character {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(character - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(character - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(character - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                case UInt8(ascii: "=") where offset >= 2 && index + 4 == input.count:
                    value = 0
                    padding += 1
                default: return nil
                }
                if padding > 0 && character != UInt8(ascii: "=") { return nil }
                word = word << 6 | value
            }
            out.append(UInt8(word >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(word >> 8 & 0xFF)) }
            if padding < 1 { out.append(UInt8(word & 0xFF)) }
            index += 4
        }
        return out
    }
}

/// SHA-256 over data that arrives in pieces (an object streamed in chunks), through libcrypto.
/// One task feeds it at a time.
public struct SHA256Hasher: ~Copyable {
    private let context: OpaquePointer

    /// A hasher with nothing fed yet; nil only when libcrypto cannot allocate.
    public init?() {
        guard let context = EVP_MD_CTX_new() else { return nil }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            EVP_MD_CTX_free(context)
            return nil
        }
        self.context = context
    }

    /// Adds the bytes of `buffer`, without copying them.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        _ = EVP_DigestUpdate(context, base, buffer.count)
    }

    /// The digest of everything fed (32 bytes); the hasher is used up.
    public consuming func finalize() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }

    deinit { EVP_MD_CTX_free(context) }
}
