import Testing
import Transport

@Suite("Safe error text")
struct SafeTextTests {
    @Test func controlCharactersAreEscapedAndLongTextIsCut() {
        #expect(SafeText.escaped("plain text, ünïcode ✓") == "plain text, ünïcode ✓")
        #expect(SafeText.escaped("a\r\nb\tc") == "a\\r\\nb\\tc")
        #expect(SafeText.escaped("\u{1B}[31mred\u{7F}\u{85}") == "\\u{1B}[31mred\\u{7F}\\u{85}")
        #expect(SafeText.escaped("abc\u{202E}cba\u{2028}") == "abc\\u{202E}cba\\u{2028}")
        let long = String(repeating: "x", count: 5000)
        let cut = SafeText.escaped(long, limit: 100)
        #expect(cut.hasPrefix(String(repeating: "x", count: 100)) && cut.hasSuffix("… (4900 more characters)"))
        // Errors of the transport escape what they carry.
        let error = TransportError(.system, message: "peer said \r\nFAKE LOG LINE")
        #expect(!error.description.contains("\n") && error.description.contains("\\r\\n"))
    }
}
