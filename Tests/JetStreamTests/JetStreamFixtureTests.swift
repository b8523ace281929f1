import Foundation
import NATSProto
import TestSupport
import Testing
import Transport

@testable import JetStream

/// The API's JSON as nats-server 2.9.10 and 2.15.1 sent it (Fixtures/jetstream), decoded into the
/// models; seeded mutations of each must decode or fail with a typed error.
@Suite("JetStream golden API answers")
struct JetStreamFixtureTests {
    static let directory = GoldenStream.fixturesDirectory.appendingPathComponent("jetstream")

    static func fixtures() throws -> [(version: String, name: String, data: Data)] {
        var found: [(String, String, Data)] = []
        for version in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where !version.hasSuffix(".md") {
            let folder = directory.appendingPathComponent(version)
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".json") {
                found.append((version, String(file.dropLast(5)), try Data(contentsOf: folder.appendingPathComponent(file))))
            }
        }
        return found
    }

    @Test func everyCapturedAnswerDecodesIntoItsModel() throws {
        let fixtures = try Self.fixtures()
        #expect(fixtures.count >= 26, "13 answers from each of two servers")
        for (version, name, data) in fixtures {
            let context = "\(version)/\(name)"
            switch name {
            case "stream-create", "stream-info":
                let info = try JetStreamJSON.decode(StreamInfo.self, from: data)
                #expect(info.config.name == "FIXTURE" && info.config.maxAge == .seconds(3600) && info.config.storage == .memory, "\(context)")
                if name == "stream-info" { #expect(info.state.messages == 1 && info.state.subjects?["fixture.a"] == 1, "\(context)") }
            case "consumer-create", "consumer-info":
                let info = try JetStreamJSON.decode(ConsumerInfo.self, from: data)
                #expect(info.name == "worker" && info.config.ackWait == .seconds(30) && info.config.maxDeliver == 5, "\(context)")
                #expect(info.pendingCount == 1, "\(context)")
            case "puback", "puback-duplicate":
                let ack = try JetStreamJSON.decode(PubAck.self, from: data)
                #expect(ack.stream == "FIXTURE" && ack.sequence == 1 && ack.duplicate == (name == "puback-duplicate"), "\(context)")
            case "account-info":
                let info = try JetStreamJSON.decode(AccountInfo.self, from: data)
                #expect(info.limits.maxStreams == -1, "\(context)")
            case "object-meta":
                let object = try JetStreamJSON.decode(ObjectInfo.self, from: data)
                #expect(object.name == "hello.txt" && object.size == 19 && object.chunks == 1, "\(context)")
                #expect(object.digest == ObjectStore.digestField(Crypto.sha256(Array("hello, object store".utf8))), "\(context)")
            default:
                #expect(name.hasPrefix("error-"), "\(context): an answer this test does not know")
                let error = try #require(try JetStreamJSON.decode(JetStreamContext.APIErrorBody.self, from: data).error, "\(context)")
                let expected: [String: Int] = [
                    "error-stream-not-found": 10059, "error-consumer-not-found": 10014, "error-no-message": 10037,
                    "error-stream-name-in-use": 10058, "error-wrong-last-sequence": 10071,
                ]
                #expect(error.err_code == expected[name], "\(context): \(error.err_code ?? 0)")
            }
        }
    }

    @Test func seededMutationsOfEveryAnswerDecodeOrFailWithATypedError() throws {
        var generator = SplitMix64(seed: 0x15_7EA7)
        let alphabet = Array("{}[]\":,0123456789-.eE truefalsnul\\".utf8) + [0, 0xFF, 0xC3]
        var outcomes = (decoded: 0, refused: 0)
        for (_, _, data) in try Self.fixtures() {
            for _ in 0..<300 {
                let mutated = Data(generator.mutate(Array(data), alphabet: alphabet))
                let message = NATSMessageShim(data: mutated).message
                do {
                    _ = try JetStreamContext.decode(StreamInfo.self, from: message, operation: "fuzz")
                    outcomes.decoded += 1
                } catch {
                    #expect(!error.description.isEmpty)
                    outcomes.refused += 1
                }
                _ = try? JetStreamJSON.decode(ConsumerInfo.self, from: mutated)
                _ = try? JetStreamJSON.decode(PubAck.self, from: mutated)
                _ = try? JetStreamJSON.decode(ObjectInfo.self, from: mutated)
            }
        }
        #expect(outcomes.refused > 0 && outcomes.decoded > 0, "\(outcomes)")
    }
}

/// A reply message carrying `data`, as the API's answers arrive.
struct NATSMessageShim {
    let data: Data
    var message: NATSMessage { NATSMessage(subject: "_INBOX.x", payload: ByteBuffer(bytes: Array(data))) }
}

@Suite("PubAck fast reader")
struct PubAckParserTests {
    static func parse(_ text: String) -> PubAck? {
        Array(text.utf8).withUnsafeBytes { PubAck.parseFlat($0) }
    }

    @Test func plainAcknowledgementsAreReadAsTheFullDecoderReadsThem() throws {
        for text in [#"{"stream":"S","seq":1}"#, #"{"stream":"FIXTURE", "seq":18446744073709551615}"#,
                     #" { "stream" : "S" , "seq" : 7 , "duplicate" : true , "domain" : "hub" } "#, #"{"seq":3,"stream":"S","other":"x"}"#] {
            let fast = try #require(Self.parse(text), "\(text)")
            let full = try JetStreamJSON.decode(PubAck.self, from: Data(text.utf8))
            #expect(fast == full, "\(text)")
        }
    }

    @Test func anythingElseIsLeftToTheFullDecoder() {
        for text in [#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"S","seq":0}"#,
                     #"{"stream":"S\u0041","seq":1}"#, #"{"stream":"S","seq":-1}"#, #"{"stream":"S","seq":1.5}"#, #"{"stream":"S"}"#,
                     #"{"stream":"S","seq":1"#, #"{"stream":"S","seq":1}x"#, #"{"stream":"S","seq":184467440737095516150}"#,
                     #"{"stream":"S","seq":1,"duplicate":tru}"#, "", "[]"] {
            #expect(Self.parse(text) == nil, "\(text)")
        }
    }

    @Test func theCapturedAcknowledgementsTakeTheFastPath() throws {
        for (version, name, data) in try JetStreamFixtureTests.fixtures() where name.hasPrefix("puback") {
            let fast = data.withUnsafeBytes { PubAck.parseFlat($0) }
            #expect(fast == (try JetStreamJSON.decode(PubAck.self, from: data)), "\(version)/\(name)")
        }
    }
}

@Suite("Pull request JSON")
struct PullRequestJSONTests {
    @Test func theWrittenJSONIsWhatTheAPIReads() throws {
        let full = PullRequest(batch: 100, expires: .seconds(30), maxBytes: 1 << 20, noWait: false, heartbeat: .milliseconds(1500))
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(full.json)) as? [String: Int])
        #expect(decoded == ["batch": 100, "expires": 30_000_000_000, "max_bytes": 1_048_576, "idle_heartbeat": 1_500_000_000])
        let bare = PullRequest(batch: 1, expires: nil, maxBytes: nil, noWait: true, heartbeat: nil)
        #expect(String(decoding: bare.json, as: UTF8.self) == #"{"batch":1,"no_wait":true}"#)
    }
}
