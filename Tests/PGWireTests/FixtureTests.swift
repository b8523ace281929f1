import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("PostgreSQL golden streams")
struct FixtureTests {
    @Test func everyCapturedServerStreamDecodesMessageByMessageWithTheNotesTypes() throws {
        let fixtures = try GoldenStream.pgwire()
        #expect(fixtures.count >= 9)
        for fixture in fixtures {
            var decoder = BackendMessageDecoder()
            for message in fixture.lines where message.fromServer {
                var buffer = ByteBuffer(bytes: message.bytes)
                let decoded = try decoder.decode(&buffer)
                #expect(decoded != nil, "\(fixture.name): \(message.note)")
                #expect(buffer.readableBytes == 0, "\(fixture.name): \(message.note)")
                if let decoded {
                    let kind = message.note.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
                    #expect(decoded.name == kind, "\(fixture.name): \(message.note)")
                }
            }
        }
    }

    @Test func everyServerStreamSplitAtEveryOffsetDecodesTheSameGuardBytesUntouched() throws {
        for fixture in try GoldenStream.pgwire() {
            let bytes = fixture.serverBytes
            var whole = BackendMessageDecoder()
            var wholeBuffer = ByteBuffer(bytes: bytes)
            var expected: [BackendMessage] = []
            while let message = try whole.decode(&wholeBuffer) { expected.append(message) }
            // Every offset for small streams; a stride for the large ones keeps the run short.
            let step = max(1, bytes.count / 400)
            for split in stride(from: 0, through: bytes.count, by: step) {
                var decoder = BackendMessageDecoder()
                var buffer = ByteBuffer(bytes: [0xAB, 0xAB, 0xAB] + bytes[..<split])
                buffer.moveReaderIndex(forwardBy: 3)
                var messages: [BackendMessage] = []
                while let message = try decoder.decode(&buffer) { messages.append(message) }
                buffer.writeBytes(bytes[split...])
                while let message = try decoder.decode(&buffer) { messages.append(message) }
                #expect(messages == expected, "\(fixture.name) split at \(split)")
            }
        }
    }

    @Test func seededMutationsOfEveryServerStreamEndInMessagesOrATypedErrorWithinBounds() throws {
        var generator = SplitMix64(seed: 0xC0FFEE)
        let alphabet = (0...255).map { UInt8($0) }
        for fixture in try GoldenStream.pgwire() {
            let bytes = fixture.serverBytes
            for _ in 0..<400 {
                let mutated = generator.mutate(bytes, alphabet: alphabet)
                var decoder = BackendMessageDecoder(maximumMessageSize: 1 << 16)
                var buffer = ByteBuffer(bytes: mutated)
                var count = 0
                do {
                    while try decoder.decode(&buffer) != nil { count += 1 }
                } catch {
                    #expect(!error.description.isEmpty)
                }
                #expect(count <= fixture.lines.count + 8)
            }
        }
    }

    @Test func replayingTheServersSideOfTheSCRAMStartupTheClientSendsExactlyTheCapturedBytes() async throws {
        let fixture = try GoldenStream.named("startup-scram.pgw", in: "pgwire")
        let listener = try Listener.bind()
        defer { listener.close() }
        let server = Task {
            let peer = try await listener.accept()
            defer { peer.close() }
            var received = ByteBuffer()
            for message in fixture.lines {
                if message.fromServer {
                    try await peer.write(ByteBuffer(bytes: message.bytes))
                } else {
                    while received.readableBytes < message.bytes.count {
                        _ = try await peer.read(into: &received, deadline: .after(.seconds(5)))
                    }
                    let got = received.readBytes(count: message.bytes.count) ?? []
                    #expect(got == message.bytes, "client sent something else for \(message.note)")
                }
            }
        }
        var config = PostgresConfiguration(
            hosts: [.init("127.0.0.1", port: listener.endpoint.port ?? 0)], user: "pgwire_fixture", password: "fixture-password",
            database: LiveServer.value("INFRA_TEST_POSTGRES_DATABASE") ?? "infra_test", sslMode: .disable)
        config.scramNonceForTesting = "fixedClientNonceForReplay0123456"
        let connection = try await PostgresConnection.connect(config)
        let result = try await connection.simpleQuery("SELECT 1")
        #expect(try result[0].rows[0].decode(Int.self, column: 0) == 1)
        connection.close()
        try await server.value
    }
}
