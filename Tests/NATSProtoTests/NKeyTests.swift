import Foundation
import Testing
import TestSupport
import Transport

@testable import NATSProto

@Suite("NKeys")
struct NKeyTests {
    @Test func seedsRoundTripChecksumsAndPrefixesAreChecked() throws {
        let pair = try NKeyPair.generate(.user)
        #expect(pair.encodedSeed.hasPrefix("SU"))
        #expect(pair.publicKey.hasPrefix("U"))
        #expect(pair.publicKey.utf8.count == 56)
        let again = try NKeyPair(seed: pair.encodedSeed)
        #expect(again.publicKey == pair.publicKey)
        let nonce = Array("server-nonce".utf8)
        let signature = try pair.sign(nonce)
        #expect(NKeyPair.verify(publicKey: pair.publicKey, message: nonce, signature: signature))
        #expect(!NKeyPair.verify(publicKey: pair.publicKey, message: nonce + [0], signature: signature))

        var corrupted = Array(pair.encodedSeed.utf8)
        corrupted[10] = corrupted[10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: NKeyError.self) { try NKeyPair(seed: String(decoding: corrupted, as: UTF8.self)) }
        #expect(throws: NKeyError.self) { try NKeyPair(seed: pair.publicKey) }
        #expect(throws: NKeyError.self) { try NKeyPair(seed: "not base32!") }
        #expect(try NKeyPair.generate(.account).publicKey.hasPrefix("A"))
    }

    @Test func thePythonNKeysLibraryAndOursReadEachOthersKeysAndSignatures() async throws {
        guard let python = ProcessInfo.processInfo.environment["INFRA_TEST_ORACLE_PYTHON"] else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("INFRA_TEST_ORACLE_PYTHON is not set: run `make test`") }
            return
        }
        let pair = try NKeyPair.generate(.user)
        let nonce = "T1vxPVlkEjTHmg"
        let signature = Base64.encode(try pair.sign(Array(nonce.utf8)))
        let script = """
            import base64, json, sys, nkeys
            seed, nonce, signature = sys.argv[1:4]
            kp = nkeys.from_seed(seed.encode())
            ours_ok = kp.verify(nonce.encode(), base64.b64decode(signature))
            fresh = nkeys.from_seed(nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER))
            print(json.dumps({"public": kp.public_key.decode(), "verified": bool(ours_ok),
                "theirs_seed": fresh.seed.decode(), "theirs_public": fresh.public_key.decode(),
                "theirs_signature": base64.b64encode(fresh.sign(nonce.encode())).decode()}))
            """
        let output = try await runCommand(python, ["-c", script, pair.encodedSeed, nonce, signature])
        let result = try #require(try JSONSerialization.jsonObject(with: output.standardOutput) as? [String: Any])
        #expect(result["public"] as? String == pair.publicKey)
        #expect(result["verified"] as? Bool == true)
        let theirs = try NKeyPair(seed: try #require(result["theirs_seed"] as? String))
        #expect(theirs.publicKey == result["theirs_public"] as? String)
        #expect(Base64.encode(try theirs.sign(Array(nonce.utf8))) == result["theirs_signature"] as? String)
    }
}
