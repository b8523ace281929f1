import Foundation
import Synchronization
import Testing
import Transport

@testable import NATSProto

@Suite("NATS options and credentials")
struct NATSConfigurationTests {
    @Test func serverURLsParseWithCredentialsRedacted() throws {
        let plain = try NATSServerAddress(parsing: "demo.example:4333")
        #expect(plain.host == "demo.example" && plain.port == 4333 && !plain.tlsRequired)
        let secure = try NATSServerAddress(parsing: "tls://user:p%40ss@[::1]")
        #expect(secure.tlsRequired && secure.host == "::1" && secure.port == 4222)
        #expect(secure.user == "user" && secure.password == "p@ss")
        #expect(secure.redacted == "tls://[::1]:4222")
        let token = try NATSServerAddress(parsing: "nats://s3cr3t@127.0.0.1:4222")
        #expect(token.token == "s3cr3t" && token.user == nil)
        let bad = #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "ws://host:80") }
        #expect(bad?.kind == .usage)
        let hidden = #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "nats://u:hunter2@a,b") }
        #expect(hidden?.description.contains("hunter2") == false)
    }

    @Test func credentialsFilesAreReadAsNscWritesThem() throws {
        let seed = try NKeyPair.generate(.user).encodedSeed
        let text = """
            -----BEGIN NATS USER JWT-----
            eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQSJ9.c2ln
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.

            -----BEGIN USER NKEY SEED-----
            \(seed)
            ------END USER NKEY SEED------

            *************************************************************
            """
        let credentials = try NATSCredentials(parsing: text, source: "test.creds")
        #expect(credentials.jwt.hasPrefix("eyJ0eXAi"))
        #expect(credentials.seed == seed)
        let missing = #expect(throws: NATSError.self) { try NATSCredentials(parsing: "-----BEGIN X-----\nabc\n-----END X-----", source: "one.creds") }
        #expect(missing?.message.contains("1 of the 2") == true)
        let unreadable = #expect(throws: NATSError.self) { try NATSCredentials(file: "/nonexistent/user.creds") }
        #expect(unreadable?.kind == .usage)
    }

    @Test func subjectValidationMatchesTheRules() {
        for good in ["a", "a.b.c", "foo-bar_baz.1", "ünï.cödé"] { #expect(NATSSubject.problem(good, wildcards: false) == nil, "\(good)") }
        for good in ["*", ">", "a.*.c", "a.>", "*.*"] { #expect(NATSSubject.problem(good, wildcards: true) == nil, "\(good)") }
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a\tb", "a\u{7F}"] { #expect(NATSSubject.problem(bad, wildcards: true) != nil, "\(bad)") }
        for bad in ["*", "a.>", "a.*.b"] { #expect(NATSSubject.problem(bad, wildcards: false) != nil, "\(bad)") }
        for bad in [">.a", "a.>.b"] { #expect(NATSSubject.problem(bad, wildcards: true) != nil, "\(bad)") }
        // Wildcard characters inside a token are literal.
        #expect(NATSSubject.problem("a*.b>", wildcards: false) == nil)
    }

    /// The word-at-a-time check for plain subjects agrees with a byte-by-byte one on random
    /// subjects of every length around the word size, and never accepts an invalid subject.
    @Test func thePlainSubjectCheckAgreesWithAByteByByteOne() {
        func reference(_ bytes: [UInt8]) -> Bool {
            guard !bytes.isEmpty, bytes.count <= 4096 else { return false }
            var afterDot = true
            for byte in bytes {
                if byte == UInt8(ascii: ".") {
                    if afterDot { return false }
                    afterDot = true
                    continue
                }
                afterDot = false
                if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") { return false }
            }
            return !afterDot
        }
        let alphabet: [UInt8] = Array("ab.c9-_".utf8) + [0x2E, 0x2E, 0x20, 0x09, 0x00, 0x7F, 0x2A, 0x3E, 0x21, 0x80, 0xC3, 0xA9, 0xFF, 0x1F]
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        for round in 0..<50_000 {
            let length = round % 40
            // Mostly plain bytes, so that accepted subjects are common too.
            let bytes = (0..<length).map { _ in
                Int.random(in: 0..<10, using: &generator) < 8 ? UInt8(ascii: "a") + UInt8.random(in: 0..<26, using: &generator) : alphabet.randomElement(using: &generator)!
            }
            let fast = bytes.withUnsafeBufferPointer { NATSSubject.isPlain($0) }
            if fast != reference(bytes) {
                Issue.record("\(bytes): word-at-a-time \(fast), byte by byte \(!fast)")
                return
            }
            if fast {
                accepted += 1
                #expect(NATSSubject.problem(String(decoding: bytes, as: UTF8.self), wildcards: false) == nil)
            }
        }
        #expect(accepted > 2_500)
    }
}
