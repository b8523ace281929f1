/// A small deterministic random generator for seeded tests (SplitMix64).
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    /// A generator whose sequence depends only on `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next value of the sequence.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `bytes` with one to four random edits (replace, delete or insert a byte from `alphabet`).
    public mutating func mutate(_ bytes: [UInt8], alphabet: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int(next() % 4 + 1) where !bytes.isEmpty {
            let index = Int(next() % UInt64(bytes.count))
            switch next() % 3 {
            case 0: bytes[index] = alphabet[Int(next() % UInt64(alphabet.count))]
            case 1: bytes.remove(at: index)
            default: bytes.insert(alphabet[Int(next() % UInt64(alphabet.count))], at: index)
            }
        }
        return bytes
    }
}
