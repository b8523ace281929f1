import Foundation
import Testing
import Transport

@testable import NATSProto

/// Error texts never carry raw control characters from a caller or a server (they would forge
/// log lines or drive a terminal), and a malformed INFO still names its server.
@Suite("NATS error texts", .timeLimit(.minutes(1)))
struct NATSErrorTextTests {
    @Test func aSubjectWithCRLFIsEscapedInTheError() async throws {
        let error = #expect(throws: NATSUsageError.self) { try NATSSubject.validate("orders.\r\nPUB evil 1\r\nx", wildcards: false) }
        let text = error?.description ?? ""
        #expect(!text.contains("\r") && !text.contains("\n"), "\(text.debugDescription)")
        let wrapped = NATSError(.usage, "invalid subject: orders.\r\nPUB evil")
        #expect(wrapped.description.contains("\\r\\n") && !wrapped.description.contains("\r"))
    }

    @Test func anInvalidINFONamesTheServerAndEscapesItsBytes() async throws {
        let listener = try Listener.bind()
        let port = try #require(listener.endpoint.port)
        let server = Task {
            let connection = try await listener.accept(deadline: .after(.seconds(10)))
            defer { connection.close() }
            try await connection.write(ByteBuffer(string: "INFO {\"server_id\": \u{1B}[2J\u{7F}, oops}\r\n"))
            try await Task.sleep(for: .seconds(1))
        }
        defer { server.cancel() }
        var configuration = NATSConfiguration(url: "nats://127.0.0.1:\(port)")
        configuration.allowReconnect = false
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(configuration) }
        let text = error?.description ?? ""
        #expect(error?.kind == .protocolViolation)
        #expect(text.contains("127.0.0.1:\(port)"), "the error names the server: \(text)")
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(text.debugDescription)")
    }
}
