/// Text from a peer, a file or a caller made safe to put in an error message or a log line:
/// control characters (CR and LF above all, which would forge log lines; ESC, which would drive a
/// terminal; Unicode's line separators and bidirectional overrides) are escaped, and anything past
/// a limit is cut with a note of how much was left out.
public enum SafeText {
    /// The default limit, in characters.
    public static let defaultLimit = 1024

    /// `text` with control characters escaped (`\n`, `\r`, `\t`, `\u{1B}` …) and cut after `limit`
    /// characters. Text that needs neither comes back as it is, without a copy.
    public static func escaped(_ text: String, limit: Int = defaultLimit) -> String {
        var clean = text.utf8.count <= limit
        if clean {
            for scalar in text.unicodeScalars where isControl(scalar) {
                clean = false
                break
            }
        }
        if clean { return text }
        var out = ""
        out.reserveCapacity(min(text.utf8.count, limit) + 32)
        var written = 0
        var total = 0
        for scalar in text.unicodeScalars {
            total += 1
            guard written < limit else { continue }
            written += 1
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar): out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        if total > written { out += "… (\(total - written) more characters)" }
        return out
    }

    /// C0 and C1 controls, DEL, the line and paragraph separators and the bidirectional
    /// embedding, override and isolate characters.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
