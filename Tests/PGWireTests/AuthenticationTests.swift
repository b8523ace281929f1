import Testing
import Transport

@testable import PGWire

@Suite("SCRAM and SASLprep")
struct AuthenticationTests {
    @Test func rfc7677ExchangeWithItsClientNonce() throws {
        var scram = SCRAMClient(password: "pencil", binding: .unsupported, nonce: "rOprNGfwEbeRWgbNEkqO", username: "user")
        #expect(String(decoding: scram.clientFirstMessage(), as: UTF8.self) == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        let final = try scram.receiveServerFirst(Array(serverFirst.utf8))
        #expect(
            String(decoding: final, as: UTF8.self)
                == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        try scram.receiveServerFinal(Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        #expect(scram.isComplete)
    }

    @Test func aWrongServerSignatureAForeignNonceOrAHostileIterationCountFail() throws {
        var scram = SCRAMClient(password: "pencil", binding: .unsupported, nonce: "abc")
        _ = scram.clientFirstMessage()
        #expect(throws: SCRAMError.self) { try scram.receiveServerFirst(Array("r=xyz123,s=QUJD,i=4096".utf8)) }

        var slow = SCRAMClient(password: "pencil", binding: .unsupported, nonce: "abc")
        _ = slow.clientFirstMessage()
        #expect(throws: SCRAMError.self) { try slow.receiveServerFirst(Array("r=abcdef,s=QUJD,i=999999999".utf8)) }

        var forged = SCRAMClient(password: "pencil", binding: .unsupported, nonce: "abc")
        _ = forged.clientFirstMessage()
        _ = try forged.receiveServerFirst(Array("r=abcdef,s=QUJD,i=16".utf8))
        #expect(throws: SCRAMError.self) { try forged.receiveServerFinal(Array("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8)) }
    }

    @Test func channelBindingGoesIntoTheGs2HeaderAndTheCAttribute() throws {
        var scram = SCRAMClient(password: "p", binding: .tlsServerEndPoint([1, 2, 3]), nonce: "n0")
        #expect(scram.mechanism == "SCRAM-SHA-256-PLUS")
        #expect(String(decoding: scram.clientFirstMessage(), as: UTF8.self) == "p=tls-server-end-point,,n=,r=n0")
        let final = String(decoding: try scram.receiveServerFirst(Array("r=n0xx,s=QUJD,i=1".utf8)), as: UTF8.self)
        let expected = Base64.encode(Array("p=tls-server-end-point,,".utf8) + [1, 2, 3])
        #expect(final.hasPrefix("c=\(expected),r=n0xx,p="))
    }

    @Test func rfc4013sExamples() {
        #expect(SASLprep.prepare("I\u{00AD}X") == "IX")  // soft hyphen mapped to nothing
        #expect(SASLprep.prepare("user") == "user")
        #expect(SASLprep.prepare("USER") == "USER")
        #expect(SASLprep.prepare("\u{00AA}") == "a")  // NFKC
        #expect(SASLprep.prepare("\u{2168}") == "IX")  // NFKC
        #expect(SASLprep.prepare("\u{0007}") == "\u{0007}")  // ASCII passes as PostgreSQL passes it
        #expect(SASLprep.prepare("a\u{0007}\u{00E9}") == nil)  // prohibited once non-ASCII
        #expect(SASLprep.prepare("\u{0627}1") == nil)  // RandALCat not at both ends
        #expect(SASLprep.prepare("\u{0627}1\u{0628}") == "\u{0627}1\u{0628}")
        #expect(SASLprep.prepare("a\u{00A0}b") == "a b")  // non-ASCII space to SPACE
        #expect(SASLprep.prepare("\u{0221}x\u{00E9}") == nil)  // unassigned in Unicode 3.2
    }

    @Test func base64RoundTripsAndRejectsWhatIsNotBase64() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("biws".utf8)) == "Yml3cw==")
        #expect(Base64.decode("Yml3cw=") == nil)
        #expect(Base64.decode("Y=l3") == nil)
        #expect(Base64.decode("Yml*") == nil)
    }
}
